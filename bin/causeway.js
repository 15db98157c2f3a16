#!/usr/bin/env node
// Entry point of the `causeway` command; the implementation lives in dist/cli (built by `npm run build`).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`causeway: Node.js 24 or newer is required (this is ${process.version}); ` +
    'the project installs it in node_modules: run "npx causeway ..." or add node_modules/.bin to PATH\n');
  process.exit(1);
}
import('../dist/cli/main.js').then((m) => m.main(process.argv.slice(2)), (err) => {
  process.stderr.write(`causeway: cannot load the built program (${err.message}); run "npm run build" first\n`);
  process.exit(1);
});
