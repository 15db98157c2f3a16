// serverless-pre-function: JavaScript functions from the configuration, run early (priority 10000).
// Trusted admin code that runs inside the gateway's process: see ../../lib/serverless.ts.
import { serverlessPlugin } from '../../lib/serverless.ts';

export default serverlessPlugin('serverless-pre-function', 10000);
