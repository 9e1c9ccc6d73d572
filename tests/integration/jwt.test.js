// jwt.test.js - JWT mode (SPEC §2): with JWT_SECRET set, a socket is who its
// HS256 token says, from auth.token, the token query parameter or an
// Authorization: Bearer header; every other token, and a bare userId, is
// refused with 401 (Socket.IO CONNECT_ERROR; plain WebSocket: error frame,
// then close 4401).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const h = require('./harness');

const SECRET = 'a-test-secret-of-32-bytes-length';
let srv;

test.before(async () => { srv = await h.startParley({ env: { JWT_SECRET: SECRET } }); });
test.after(async () => { assert.equal((await srv.stop()).code, 0); });

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function sign(claims, { secret = SECRET, header = { alg: 'HS256', typ: 'JWT' }, alg = 'sha256' } = {}) {
  const head = b64url(JSON.stringify(header));
  const body = b64url(JSON.stringify(claims));
  const sig = alg ? crypto.createHmac(alg, secret).update(`${head}.${body}`).digest() : Buffer.alloc(0);
  return `${head}.${body}.${b64url(sig)}`;
}

// Connects with the given client options; resolves to {whoami} or {error}.
async function attempt(opts) {
  const s = h.sioClient(srv, '/messages', { transports: ['websocket'], reconnection: false, ...opts });
  try {
    const r = await new Promise((resolve) => {
      s.on('connect', () => resolve({ ok: true }));
      s.on('connect_error', (e) => resolve({ error: e }));
      s.connect();
    });
    if (r.error) return r;
    return { whoami: await s.timeout(3000).emitWithAck('test:whoami') };
  } finally {
    s.close();
  }
}

async function refused(opts, why) {
  const r = await attempt(opts);
  assert.ok(r.error, `expected a refusal (${why}), got ${JSON.stringify(r.whoami)}`);
  assert.equal(r.error.data && r.error.data.statusCode, 401, `${why}: ${r.error.message}`);
  assert.match(r.error.message, /^unauthorized: /);
  return r.error.message;
}

test('a valid token in auth.token: the socket is the token\'s sub, with the name and avatar claims as its profile', async () => {
  const token = sign({ sub: 'u-42', name: 'Ada', avatar: 'https://img/a.png', exp: now() + 60 });
  const { whoami } = await attempt({ auth: { token, userId: 'someone-else' } });
  assert.equal(whoami.userId, 'u-42', 'the identity comes from the token, not the payload');
  assert.equal(whoami.user.name, 'Ada');
  assert.equal(whoami.user.avatar, 'https://img/a.png');
});

test('the token may come in the query (token=) or an Authorization: Bearer header; a userId claim stands in for sub', async () => {
  const viaQuery = await attempt({ query: { token: sign({ sub: 'q-user' }) } });
  assert.ok(viaQuery.whoami, `query token refused: ${viaQuery.error && viaQuery.error.message}`);
  assert.equal(viaQuery.whoami.userId, 'q-user');
  const viaHeader = await attempt({ extraHeaders: { Authorization: `Bearer ${sign({ userId: 'h-user' })}` } });
  assert.ok(viaHeader.whoami, `header token refused: ${viaHeader.error && viaHeader.error.message}`);
  assert.equal(viaHeader.whoami.userId, 'h-user');
});

test('in JWT mode a bare userId (auth or query) is refused', async () => {
  await refused({ auth: { userId: 'mallory' } }, 'bare auth userId');
  await refused({ query: { userId: 'mallory' } }, 'bare query userId');
});

test('attack matrix: alg none, HS512, RS256, a wrong key, a tampered payload, expired, not yet valid, no sub, garbage — all refused with 401', async () => {
  const good = sign({ sub: 'victim' });
  const [head, body, sig] = good.split('.');
  const tampered = `${head}.${b64url(JSON.stringify({ sub: 'admin' }))}.${sig}`;
  const cases = [
    [sign({ sub: 'victim' }, { header: { alg: 'none', typ: 'JWT' }, alg: null }), /malformed|algorithm/],
    [`${b64url(JSON.stringify({ alg: 'none' }))}.${body}.`, /malformed|algorithm/],
    [sign({ sub: 'victim' }, { header: { alg: 'HS512' }, alg: 'sha512' }), /algorithm/],
    [sign({ sub: 'victim' }, { header: { alg: 'RS256' } }), /algorithm/],
    [sign({ sub: 'victim' }, { secret: 'not-the-secret' }), /signature/],
    [tampered, /signature/],
    [sign({ sub: 'victim', exp: now() - 1 }), /expired/],
    [sign({ sub: 'victim', nbf: now() + 3600 }), /not yet valid/],
    [sign({ sub: 'victim', exp: 'tomorrow' }), /expired/],
    [sign({ name: 'nobody' }), /names no user/],
    [sign({ sub: '' }), /names no user/],
    ['not.a.jwt', /malformed/],
    ['x'.repeat(9000), /too long/],
  ];
  for (const [token, why] of cases) {
    const msg = await refused({ auth: { token } }, `token ${token.slice(0, 40)}`);
    assert.match(msg, why, `token ${token.slice(0, 60)}: ${msg}`);
  }
});

test('plain WebSocket: a token in the query connects as its sub; a bad one gets an error frame and close 4401', async () => {
  const ok = h.plainClient(srv, `token=${sign({ sub: 'plain-u' })}`);
  await ok.opened;
  ok.sendJson({ event: 'test:whoami', ack: 1 });
  const who = await ok.next((f) => f.ack === 1);
  assert.equal(who.data.userId, 'plain-u');
  ok.close();

  const bad = h.plainClient(srv, `token=${sign({ sub: 'plain-u' }, { secret: 'wrong' })}`);
  const closed = new Promise((resolve) => bad.on('close', (code) => resolve(code)));
  const err = await bad.next((f) => f.event === 'error');
  assert.equal(err.data.statusCode, 401);
  assert.equal(await closed, 4401);
});

test('plain WebSocket: an Authorization: Bearer header works too', async () => {
  const ws = h.frameQueue(new WebSocket(`ws://127.0.0.1:${srv.port}/messages`,
    { headers: { Authorization: `Bearer ${sign({ sub: 'hdr-plain' })}` } }), JSON.parse);
  await ws.opened;
  ws.send(JSON.stringify({ event: 'test:whoami', ack: 2 }));
  assert.equal((await ws.next((f) => f.ack === 2)).data.userId, 'hdr-plain');
  ws.close();
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
