// The error log: one line per event on stderr, nginx's layout (`2026/11/26 12:00:00 [warn] 1234#2: message`)
// so operators' existing log tooling keeps working. Level threshold from nginx_config.error_log_level.
import { threadId } from 'node:worker_threads';

export type LogLevel = 'debug' | 'info' | 'notice' | 'warn' | 'error' | 'crit' | 'alert' | 'emerg';
const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, notice: 2, warn: 3, error: 4, crit: 5, alert: 6, emerg: 7 };

let threshold = ORDER.warn;

export function setLogLevel(level: string): void {
  threshold = ORDER[level as LogLevel] ?? ORDER.warn;
}

function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function log(level: LogLevel, message: string): void {
  if (ORDER[level] < threshold) return;
  process.stderr.write(`${stamp()} [${level}] ${process.pid}#${threadId}: ${message}\n`);
}
