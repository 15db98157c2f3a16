// Command-line parsing for `causeway <command> [-c config.yaml]`.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export interface CliArgs {
  command: string;
  configPath: string | undefined;
}

export class UsageError extends Error {}

export const USAGE = `Usage: causeway <command> [options]

Commands:
  start      run the gateway in the foreground (logs to stdout/stderr)
  validate   check config.yaml and the declarative file, exit 1 on the first problem
  version    print the version

Options:
  -c, --config <path>   config.yaml to use (default: conf/config.yaml when it exists)
  -h, --help            this help
`;

export function parseArgs(argv: readonly string[]): CliArgs {
  let command: string | undefined;
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-c' || arg === '--config') {
      configPath = argv[++i];
      if (!configPath) throw new UsageError(`${arg} needs a path`);
    } else if (arg.startsWith('--config=')) {
      configPath = arg.slice('--config='.length);
    } else if (arg === '-h' || arg === '--help') {
      command = 'help';
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}`);
    } else if (!command) {
      command = arg;
    } else {
      throw new UsageError(`unexpected argument ${arg}`);
    }
  }
  if (configPath === undefined && existsSync('conf/config.yaml')) configPath = resolve('conf/config.yaml');
  return { command: command ?? 'help', configPath };
}
