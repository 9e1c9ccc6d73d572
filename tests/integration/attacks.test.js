// attacks.test.js - the attack matrix (issue 7): forged or stale tokens, a
// payload naming another user, joining a conversation one is not a member
// of, signaling into someone else's call, the HTTP API without its key or
// with a wrong one. Every attempt is refused, logged, and counted in
// /metrics.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const h = require('./harness');

const SECRET = 'attack-matrix-secret-0123456789';
const KEY = 'attack-matrix-api-key';
let srv;

test.before(async () => {
  srv = await h.startParley({ env: { JWT_SECRET: SECRET, PARLEY_API_KEY: KEY,
    PARLEY_PLUGIN_PATH: `${path.join(h.ROOT, 'tests', 'plugins')};${path.join(h.ROOT, 'plugins')}`,
    PARLEY_PLUGINS: 'testkit,calls' } });
});
test.after(async () => { assert.equal((await srv.stop()).code, 0); });

const b64 = (x) => Buffer.from(x).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
function jwt(claims, { alg = 'HS256', secret = SECRET, hmac = 'sha256' } = {}) {
  const head = b64(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64(JSON.stringify(claims));
  const sig = hmac ? crypto.createHmac(hmac, secret).update(`${head}.${body}`).digest() : Buffer.alloc(0);
  return `${head}.${body}.${b64(sig)}`;
}

async function metrics() {
  return (await fetch(`${srv.url}/metrics`)).text();
}
function counter(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function attempt(auth) {
  const s = h.sioClient(srv, '/messages', { auth, transports: ['websocket'] });
  try {
    return await new Promise((resolve) => {
      s.on('connect', () => resolve({ ok: true }));
      s.on('connect_error', (e) => resolve({ error: e }));
      s.connect();
    });
  } finally {
    s.close();
  }
}

async function user(sub) {
  const s = h.sioClient(srv, '/messages', { auth: { token: jwt({ sub, exp: now() + 300 }) }, transports: ['websocket'] });
  await h.connected(s);
  return s;
}

test('tokens: alg none, a wrong key, expired, not yet valid, tampered, another algorithm, a bare userId: each refused (401), logged, counted', async () => {
  const before = counter(await metrics(), 'parley_errors_total{code="401"}');
  const good = jwt({ sub: 'victim' });
  const [head, , sig] = good.split('.');
  const cases = [
    { token: jwt({ sub: 'victim' }, { alg: 'none', hmac: null }) },
    { token: jwt({ sub: 'victim' }, { secret: 'guessed-secret' }) },
    { token: jwt({ sub: 'victim', exp: now() - 10 }) },
    { token: jwt({ sub: 'victim', nbf: now() + 600 }) },
    { token: `${head}.${b64(JSON.stringify({ sub: 'admin' }))}.${sig}` },
    { token: jwt({ sub: 'victim' }, { alg: 'HS384', hmac: 'sha384' }) },
    { userId: 'victim' },
  ];
  for (const auth of cases) {
    const r = await attempt(auth);
    assert.ok(r.error, `accepted: ${JSON.stringify(auth)}`);
    assert.equal(r.error.data.statusCode, 401);
  }
  assert.equal(counter(await metrics(), 'parley_errors_total{code="401"}') - before, cases.length);
  const refusals = srv.logs().split('\n').filter((l) => /connect refused \(401, \/messages, /.test(l));
  assert.ok(refusals.length >= cases.length, `${refusals.length} refusals logged`);
  assert.match(srv.logs(), /connect refused \(401.*token expired/);
});

test('acting as someone else, joining where one is no member, signaling into another\'s call: 403, logged, counted', async () => {
  const before = counter(await metrics(), 'parley_errors_total{code="403"}');
  const r1 = await fetch(`${srv.url}/api/conversations/private/members`, { method: 'PUT',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ members: ['alice', 'bob'] }) });
  assert.equal(r1.status, 200);
  const alice = await user('alice');
  const bob = await user('bob');
  const mallory = await user('mallory');
  try {
    const asAlice = await mallory.timeout(3000).emitWithAck('typing:start', { conversationId: 'x', userId: 'alice' });
    assert.equal(asAlice.statusCode, 403);
    const sendAsAlice = await mallory.timeout(3000).emitWithAck('message:send',
      { conversationId: 'x', type: 'text', content: 'hi', userId: 'alice' });
    assert.equal(sendAsAlice.statusCode, 403);
    assert.equal((await mallory.timeout(3000).emitWithAck('conversation:join', { conversationId: 'private' })).statusCode, 403);
    assert.equal((await mallory.timeout(3000).emitWithAck('messages:sync', { conversationId: 'private' })).statusCode, 403);

    const { callId } = await alice.timeout(3000).emitWithAck('call:invite', { toUserId: 'bob', kind: 'voice' });
    await bob.timeout(3000).emitWithAck('call:accept', { callId });
    for (const ev of ['call:offer', 'call:ice-candidate', 'call:end']) {
      const r = await mallory.timeout(3000).emitWithAck(ev, { callId, sdp: 'evil' });
      assert.equal(r.statusCode, 403, `${ev}: ${JSON.stringify(r)}`);
    }
    assert.equal(counter(await metrics(), 'parley_errors_total{code="403"}') - before, 7);
    assert.match(srv.logs(), /refused \(403\) conversation:join from socket \S+ \(mallory\): not a member/);
    assert.match(srv.logs(), /refused \(403\) call:offer from socket \S+ \(mallory\): not a party/);
    assert.match(srv.logs(), /refused \(403\) typing:start from socket \S+ \(mallory\): userId does not match/);
  } finally {
    [alice, bob, mallory].forEach((s) => s.close());
  }
});

test('the HTTP API without its key or with a wrong one: 401, logged, counted', async () => {
  const before = counter(await metrics(), 'parley_http_errors_total{code="401"}');
  for (const headers of [{}, { Authorization: 'Bearer nope' }, { Authorization: `Basic ${KEY}` },
    { Authorization: `Bearer ${KEY}x` }]) {
    const r = await fetch(`${srv.url}/api/users/online`, { headers });
    assert.equal(r.status, 401);
  }
  const text = await metrics();
  assert.equal(counter(text, 'parley_http_errors_total{code="401"}') - before, 4);
  assert.ok(counter(text, 'parley_protocol_errors_total{kind="api_bad_key"}') >= 4);
  assert.match(srv.logs(), /HTTP API GET \/api\/users\/online from (::ffff:)?127\.0\.0\.1 refused \(401\): no valid key/);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
