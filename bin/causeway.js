#!/usr/bin/env node
// Entry point of the `causeway` command; the implementation lives in dist/cli (built by `npm run build`).
import('../dist/cli/main.js').then((m) => m.main(process.argv.slice(2)), (err) => {
  process.stderr.write(`causeway: cannot load the built program (${err.message}); run "npm run build" first\n`);
  process.exit(1);
});
