// The access log: APISIX's default line, a custom format with JSON escaping, one line per request
// from every worker, and SIGUSR1 reopening the file after a rotation.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, startGateway, startUpstream, waitFor, type Gateway, type Upstream } from '../helpers/gateway.ts';

function readLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

describe('access log: the default format, two workers, rotation', () => {
  let up: Upstream;
  let gw: Gateway;
  let file: string;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      workers: 2,
      routes: { routes: [{ id: '1', uri: '/hello', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } }] },
    });
    file = join(gw.dir, 'logs', 'access.log');
  });

  after(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('writes APISIX\'s default line for a proxied request', async () => {
    const r = await request(gw.url('/hello?x=1'), { headers: { 'User-Agent': 'probe/1.0', Referer: 'http://ref.test/' } });
    assert.equal(r.status, 200);
    await waitFor(() => readLines(file).length >= 1, 5000, 'the access log line');
    const line = readLines(file)[0];
    const re = new RegExp(
      '^127\\.0\\.0\\.1 - - \\[\\d{2}/[A-Z][a-z]{2}/\\d{4}:\\d{2}:\\d{2}:\\d{2} [+-]\\d{4}\\] 127\\.0\\.0\\.1:\\d+ "GET /hello\\?x=1 HTTP/1\\.1" 200 \\d+ \\d+\\.\\d{3} ' +
        `"http://ref\\.test/" "probe/1\\.0" ${up.node.replace(/\./g, '\\.')} 200 \\d+\\.\\d{3} "http://127\\.0\\.0\\.1:\\d+/hello\\?x=1" "[0-9a-f]{32}"$`,
    );
    assert.match(line, re);
  });

  it('logs unmatched requests too, with dashes for what did not happen', async () => {
    assert.equal((await request(gw.url('/nowhere'))).status, 404);
    await waitFor(() => readLines(file).some((l) => l.includes('"GET /nowhere HTTP/1.1" 404')), 5000, 'the 404 line');
    const line = readLines(file).find((l) => l.includes('/nowhere'))!;
    assert.match(line, /" 404 \d+ \d+\.\d{3} "-" "[^"]*" - - - "-:\/\/-\/nowhere" "[0-9a-f]{32}"$/);
  });

  it('has one line per request, whichever worker served it', async () => {
    const before = readLines(file).length;
    const n = 30;
    const answers = await Promise.all(Array.from({ length: n }, () => request(gw.url('/hello'), { headers: { Connection: 'close' } })));
    assert.ok(answers.every((a) => a.status === 200));
    await waitFor(() => readLines(file).length === before + n, 5000, `${n} more lines`);
  });

  it('logs HTTP/2 requests with the size of their own answer', async () => {
    // asynchronously: the upstream answering curl lives in this process
    const { stdout: out } = await promisify(execFile)('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{size_download}', gw.url('/hello?proto=h2')], { encoding: 'utf8' });
    const [version, code, size] = out.split(' ');
    assert.deepEqual([version, code], ['2', '200']);
    await waitFor(() => readLines(file).some((l) => l.includes('proto=h2')), 5000, 'the HTTP/2 line');
    const line = readLines(file).find((l) => l.includes('proto=h2'))!;
    const match = /"GET \/hello\?proto=h2 HTTP\/2\.0" 200 (\d+) /.exec(line);
    assert.ok(match, line);
    assert.equal(match[1], size);
  });

  it('SIGUSR1 reopens the file after it was moved away', async () => {
    const rotated = `${file}.1`;
    renameSync(file, rotated);
    gw.proc.kill('SIGUSR1');
    await waitFor(() => existsSync(file), 5000, 'a new file');
    assert.equal((await request(gw.url('/hello?after=rotation'))).status, 200);
    await waitFor(() => readLines(file).some((l) => l.includes('after=rotation')), 5000, 'the line in the new file');
    assert.ok(!readLines(rotated).some((l) => l.includes('after=rotation')));
  });
});

describe('access log: custom format, JSON escaping, off', () => {
  let up: Upstream;
  let gw: Gateway;
  let off: Gateway;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      config: {
        nginx_config: {
          http: {
            access_log: 'custom/requests.log',
            access_log_format: '{"uri":"$uri","status":$status,"ua":"$http_user_agent","consumer":"$consumer_name","route":"$route_id"}',
            access_log_format_escape: 'json',
          },
        },
      },
      routes: { routes: [{ id: 'r', uri: '/hello', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } }] },
    });
    off = await startGateway({
      config: { nginx_config: { http: { enable_access_log: false } } },
      routes: { routes: [{ id: 'r', uri: '/hello', upstream: { type: 'roundrobin', nodes: { [up.node]: 1 } } }] },
    });
  });

  after(async () => {
    await gw?.stop();
    await off?.stop();
    await up?.close();
  });

  it('writes the configured format to the configured path, JSON-escaped', async () => {
    const file = join(gw.dir, 'custom', 'requests.log');
    await request(gw.url('/hello'), { headers: { 'User-Agent': 'say "hi"\\' } });
    await waitFor(() => readLines(file).length === 1, 5000, 'the line');
    assert.deepEqual(JSON.parse(readLines(file)[0]), { uri: '/hello', status: 200, ua: 'say "hi"\\', consumer: '-', route: 'r' });
  });

  it('writes nothing when enable_access_log is false', async () => {
    assert.equal((await request(off.url('/hello'))).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(existsSync(join(off.dir, 'logs', 'access.log')), false);
  });
});
