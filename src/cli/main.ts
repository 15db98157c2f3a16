// The `causeway` command.
import { ConfigError } from '../conf/index.ts';
import { log } from '../util/log.ts';
import { VERSION } from '../util/version.ts';
import { AdminTokenError } from './admin.ts';
import { parseArgs, USAGE, UsageError } from './args.ts';
import { start } from './start.ts';
import { validate } from './validate.ts';

export async function main(argv: string[]): Promise<void> {
  try {
    const args = parseArgs(argv);
    switch (args.command) {
      case 'start':
        await start(args.configPath);
        return;
      case 'validate':
        process.exitCode = (await validate(args.configPath, (line) => process.stdout.write(line + '\n'))) ? 0 : 1;
        return;
      case 'version':
        process.stdout.write(`causeway ${VERSION}\n`);
        return;
      case 'help':
        process.stdout.write(USAGE);
        return;
      default:
        throw new UsageError(`unknown command "${args.command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`causeway: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (err instanceof AdminTokenError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    } else if (err instanceof ConfigError) {
      process.stderr.write(`causeway: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      log('emerg', (err as Error).message);
      process.exit(1);
    }
  }
}
