import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRealIp, realClientAddr } from '../../src/proxy/real-ip.ts';

describe('realip', () => {
  const xRealIp = compileRealIp('X-Real-IP', ['127.0.0.1', 'unix:'], 'off');
  const xff = compileRealIp('X-Forwarded-For', ['127.0.0.0/8', '10.0.0.0/8'], 'off');
  const xffRecursive = compileRealIp('X-Forwarded-For', ['127.0.0.0/8', '10.0.0.0/8'], 'on');

  it('takes the header from a trusted peer only (APISIX default: X-Real-IP from 127.0.0.1)', () => {
    assert.equal(realClientAddr('127.0.0.1', { 'x-real-ip': '1.2.3.4' }, xRealIp), '1.2.3.4');
    assert.equal(realClientAddr('192.0.2.9', { 'x-real-ip': '1.2.3.4' }, xRealIp), '192.0.2.9');
    assert.equal(realClientAddr('127.0.0.1', {}, xRealIp), '127.0.0.1');
  });

  it('ignores a value that is not an IP address', () => {
    assert.equal(realClientAddr('127.0.0.1', { 'x-real-ip': 'evil' }, xRealIp), '127.0.0.1');
  });

  it('uses the last X-Forwarded-For entry without recursion', () => {
    assert.equal(realClientAddr('127.0.0.1', { 'x-forwarded-for': '1.1.1.1, 10.0.0.5' }, xff), '10.0.0.5');
  });

  it('skips trusted proxies with real_ip_recursive on', () => {
    assert.equal(realClientAddr('127.0.0.1', { 'x-forwarded-for': '1.1.1.1, 10.0.0.5' }, xffRecursive), '1.1.1.1');
    assert.equal(realClientAddr('127.0.0.1', { 'x-forwarded-for': '10.0.0.6, 10.0.0.5' }, xffRecursive), '10.0.0.6');
  });

  it('is off without trusted addresses', () => {
    assert.equal(compileRealIp('X-Real-IP', ['unix:'], 'off'), undefined);
  });
});
