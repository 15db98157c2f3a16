// Pure logic of the auth plugins: credential parsing, query and cookie rewriting, JWT payload and
// claim checks, HMAC signature fields and HTTP dates, forward-auth header templates.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Consumer, ConsumerCredential } from '../../src/plugins/api.ts';
import { buildAuthIndex, challenge, decodeBase64Strict, sameSecret, unauthorized, withoutCookie, withoutQueryArg } from '../../src/plugins/lib/auth.ts';
import { parseBasicAuthorization } from '../../src/plugins/builtin/basic-auth/index.ts';
import { readJwtPayload, verifyClaims } from '../../src/plugins/builtin/jwt-auth/index.ts';
import { parseHttpTime, parseSignatureAuthorization } from '../../src/plugins/builtin/hmac-auth/index.ts';
import { compileTemplate } from '../../src/plugins/builtin/forward-auth/index.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('auth helpers', () => {
  it('removes one query argument and keeps the others as sent', () => {
    assert.equal(withoutQueryArg('/p?apikey=k&a=1&b=%2F', 'apikey'), '/p?a=1&b=%2F');
    assert.equal(withoutQueryArg('/p?a=1&apikey=k&apikey=j', 'apikey'), '/p?a=1');
    assert.equal(withoutQueryArg('/p?apikey=k', 'apikey'), '/p');
    assert.equal(withoutQueryArg('/p?api%6Bey=k&x', 'apikey'), '/p?x');
    assert.equal(withoutQueryArg('/p', 'apikey'), '/p');
  });

  it('removes one cookie and keeps the others', () => {
    assert.equal(withoutCookie('a=1; jwt=xyz; b=2', 'jwt'), 'a=1; b=2');
    assert.equal(withoutCookie('jwt=xyz', 'jwt'), undefined);
    assert.equal(withoutCookie('jwtx=1;jwt=2', 'jwt'), 'jwtx=1');
  });

  it('decodes base64 as nginx does', () => {
    assert.equal(decodeBase64Strict('Zm9vOmJhcg==')?.toString(), 'foo:bar');
    assert.equal(decodeBase64Strict('Zm9vOmJhcg')?.toString(), 'foo:bar');
    assert.equal(decodeBase64Strict('aca_a'), undefined);
    assert.equal(decodeBase64Strict('abcde'), undefined);
    assert.equal(decodeBase64Strict('')?.length, 0);
  });

  it('indexes credentials by key, first one wins, and every consumer by name', () => {
    const jack: Consumer = { username: 'jack', plugins: {} };
    const rose: Consumer = { username: 'rose', plugins: {} };
    const entries: ConsumerCredential[] = [
      { consumer: jack, conf: { key: 'k1' } },
      { consumer: jack, conf: { key: 'k2' }, credentialId: 'c1' },
      { consumer: rose, conf: { key: 'k1' } },
    ];
    const index = buildAuthIndex<{ key: string }, ConsumerCredential<{ key: string }>>(entries, (c) => c.key, (e) => e);
    assert.equal(index.byKey.get('k1')?.consumer, jack);
    assert.equal(index.byKey.get('k2')?.credentialId, 'c1');
    assert.deepEqual([...index.consumers.keys()], ['jack', 'rose']);
  });

  it('words 401 answers and challenges', () => {
    assert.equal(challenge('Basic', 'basic'), 'Basic realm="basic"');
    assert.deepEqual(unauthorized('Missing API key in request', 'apikey realm="key"'), {
      status: 401,
      body: { message: 'Missing API key in request' },
      headers: { 'WWW-Authenticate': 'apikey realm="key"' },
    });
    assert.ok(sameSecret('abc', Buffer.from('abc')));
    assert.ok(!sameSecret('abc', 'abcd'));
  });
});

describe('basic-auth header parsing', () => {
  it('reads username and password, colons after the first belong to the password', () => {
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('foo:bar')}`), { username: 'foo', password: 'bar' });
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('foo:b:a:r')}`), { username: 'foo', password: 'b:a:r' });
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('foo:bar\n')}`), { username: 'foo', password: 'bar' });
    assert.deepEqual(parseBasicAuthorization(`Basic ${b64('foo:')}`), { username: 'foo', password: '' });
  });

  it('says why a value cannot be read', () => {
    assert.equal(parseBasicAuthorization('Bad_header YmFyOmJhcgo='), 'Invalid authorization header format');
    assert.equal(parseBasicAuthorization('Basic aca_a'), 'Failed to decode authentication header: aca_a');
    assert.equal(parseBasicAuthorization('Basic YmFy'), 'Split authorization err: invalid decoded data: bar');
  });
});

describe('jwt-auth', () => {
  it('reads the payload of a compact JWS', () => {
    const token = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ key: 'user-key', exp: 1 })}.sig`;
    assert.deepEqual(readJwtPayload(token), { key: 'user-key', exp: 1 });
    assert.equal(readJwtPayload('a.b'), 'invalid jwt string');
    assert.equal(readJwtPayload(`!!.${b64url({})}.x`), 'invalid header');
    assert.equal(readJwtPayload(`${b64url({ alg: 'HS256' })}.${b64url(3)}.x`), 'invalid payload');
  });

  it('checks exp and nbf as APISIX does', () => {
    const now = 1_700_000_000;
    assert.equal(verifyClaims({ exp: now + 1 }, ['exp', 'nbf'], 0, now), undefined);
    assert.equal(verifyClaims({ exp: now }, ['exp', 'nbf'], 0, now), `'exp' claim expired at ${new Date(now * 1000).toUTCString()}`);
    assert.equal(verifyClaims({ exp: now }, ['exp'], 1, now), undefined);
    assert.equal(verifyClaims({ exp: now - 10 }, ['nbf'], 0, now), undefined);
    assert.equal(verifyClaims({ nbf: now }, ['exp', 'nbf'], 0, now), `'nbf' claim not valid until ${new Date(now * 1000).toUTCString()}`);
    assert.equal(verifyClaims({ nbf: now - 1 }, ['nbf'], 0, now), undefined);
    assert.equal(verifyClaims({ exp: '1' }, ['exp'], 0, now), 'claim exp is not a number');
    assert.equal(verifyClaims({}, ['exp', 'nbf'], 0, now), undefined);
  });
});

describe('hmac-auth', () => {
  it('reads the Signature fields', () => {
    assert.deepEqual(parseSignatureAuthorization('Signature keyId="my-key",algorithm="hmac-sha256",headers="@request-target date",signature="c2ln"'), {
      keyId: 'my-key',
      algorithm: 'hmac-sha256',
      headers: ['@request-target', 'date'],
      signature: 'c2ln',
    });
    assert.deepEqual(parseSignatureAuthorization('Signature keyId="k", signature="s"'), { keyId: 'k', signature: 's' });
    assert.equal(parseSignatureAuthorization(undefined), 'missing Authorization header');
    assert.equal(parseSignatureAuthorization('Basic abc'), "Authorization header does not start with 'Signature'");
  });

  it('parses the three HTTP date forms', () => {
    const expected = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
    assert.equal(parseHttpTime('Sun, 06 Nov 1994 08:49:37 GMT'), expected);
    assert.equal(parseHttpTime('Sunday, 06-Nov-94 08:49:37 GMT'), expected);
    assert.equal(parseHttpTime('Sun Nov  6 08:49:37 1994'), expected);
    assert.equal(parseHttpTime('2024-01-01T00:00:00Z'), undefined);
    assert.equal(parseHttpTime('Sun, 06 Foo 1994 08:49:37 GMT'), undefined);
  });
});

describe('forward-auth header templates', () => {
  it('splits literal text and variables', () => {
    assert.deepEqual(compileTemplate('$remote_addr'), [{ variable: 'remote_addr' }]);
    assert.deepEqual(compileTemplate('id=${arg_id};u=$request_uri'), [{ text: 'id=' }, { variable: 'arg_id' }, { text: ';u=' }, { variable: 'request_uri' }]);
    assert.deepEqual(compileTemplate('price \\$5'), [{ text: 'price ' }, { text: '$' }, { text: '5' }]);
    assert.deepEqual(compileTemplate('$post_arg.user.name'), [{ variable: 'post_arg.user.name' }]);
  });
});
