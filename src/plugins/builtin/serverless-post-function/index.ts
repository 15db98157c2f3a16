// serverless-post-function: JavaScript functions from the configuration, run late (priority -2000).
// Trusted admin code that runs inside the gateway's process: see ../../lib/serverless.ts.
import { serverlessPlugin } from '../../lib/serverless.ts';

export default serverlessPlugin('serverless-post-function', -2000);
