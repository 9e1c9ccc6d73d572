// admin.test.js - the operator's API (issue 20, item 5; scripts/admin.lua),
// behind PARLEY_API_KEY: a user's sockets with namespace, transport,
// address, connect time and rooms; disconnecting every socket of a user,
// the reason told to each; taking a user out of a room; emitting to a room
// named URL-encoded (conversation%3Ac1). Bad input is a 4xx, counted. And
// the startup warning when development auth is on.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const KEY = 'admin-test-key-0123456789';
let srv;

test.before(async () => { srv = await h.startParley({ env: { PARLEY_API_KEY: KEY } }); });
test.after(async () => {
  assert.equal((await srv.stop()).code, 0);
  h.cleanup();
});

async function call(method, path, { body, key = KEY, raw } = {}) {
  const headers = {};
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined || raw !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${srv.url}${path}`, {
    method, headers, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function user(id, opts = {}) {
  const s = h.sioClient(srv, '/messages', { query: { userId: id }, transports: ['websocket'], ...opts });
  await h.connected(s);
  return s;
}

async function join(s, conv) {
  const r = await s.timeout(5000).emitWithAck('conversation:join', { conversationId: conv });
  assert.ok(r && r.success !== false, JSON.stringify(r));
}

test('development auth on: a warn line at startup says any client can claim any userId', async () => {
  assert.match(srv.logs(), /warn .*development auth is on: any client can claim any userId/);
});

test('GET /api/users/{id}/sockets: each socket with namespace, transport, address, connect time and rooms', async () => {
  const before = Date.now();
  const a = await user('ann');
  const b = await user('ann', { transports: ['polling'] });
  await join(a, 'c1');
  const r = await call('GET', '/api/users/ann/sockets');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.userId, 'ann');
  assert.equal(r.body.sockets.length, 2);
  const byId = Object.fromEntries(r.body.sockets.map((s) => [s.id, s]));
  const sa = byId[a.id];
  const sb = byId[b.id];
  assert.ok(sa && sb, `sockets ${a.id} ${b.id} in ${JSON.stringify(r.body)}`);
  assert.equal(sa.namespace, '/messages');
  assert.equal(sa.transport, 'websocket');
  assert.equal(sb.transport, 'polling');
  assert.match(sa.address, /^(::ffff:)?127\.0\.0\.1$/);
  assert.ok(sa.connectedAt >= before - 1000 && sa.connectedAt <= Date.now() + 1000, String(sa.connectedAt));
  assert.ok(sa.rooms.includes('conversation:c1') && sa.rooms.includes('user:ann'), JSON.stringify(sa.rooms));
  assert.ok(!sb.rooms.includes('conversation:c1'));
  // Nobody: an empty list, not an error.
  const none = await call('GET', '/api/users/nobody/sockets');
  assert.deepEqual(none, { status: 200, body: { userId: 'nobody', sockets: [] } });
  a.close();
  b.close();
});

test('POST /api/users/{id}/disconnect: every socket of the user is told the reason and disconnected; others stay', async () => {
  const a = await user('bob');
  const b = await user('bob');
  const other = await user('carol');
  const told = [h.once(a, 'error', 5000), h.once(b, 'error', 5000)];
  const gone = [h.once(a, 'disconnect', 5000), h.once(b, 'disconnect', 5000)];
  const r = await call('POST', '/api/users/bob/disconnect', { body: { reason: 'account suspended' } });
  assert.deepEqual(r, { status: 200, body: { userId: 'bob', disconnected: 2 } });
  for (const e of await Promise.all(told)) {
    assert.equal(e.statusCode, 410);
    assert.equal(e.message, 'disconnected by the server: account suspended');
  }
  assert.deepEqual(await Promise.all(gone), ['io server disconnect', 'io server disconnect']);
  assert.ok(other.connected);
  assert.equal(await other.timeout(2000).emitWithAck('test:echo', 'still'), 'still');
  const after = await call('GET', '/api/users/bob/sockets');
  assert.equal(after.body.sockets.length, 0);
  // No reason: a default one.
  const c = await user('bob');
  const e = h.once(c, 'error', 5000);
  assert.equal((await call('POST', '/api/users/bob/disconnect')).status, 200);
  assert.equal((await e).message, 'disconnected by the server: disconnected by an administrator');
  other.close();
});

test('POST /api/rooms/{room}/leave and /emit, the room URL-encoded: the user leaves the room, the rest of it gets the event', async () => {
  const d = await user('dan');
  const e = await user('eve');
  await join(d, 'c2');
  await join(e, 'c2');
  const r = await call('POST', '/api/rooms/conversation%3Ac2/leave', { body: { userId: 'dan' } });
  assert.deepEqual(r, { status: 200, body: { room: 'conversation:c2', userId: 'dan', left: 1 } });
  const got = h.once(e, 'notice', 5000);
  const quiet = h.silent(d, 'notice', 500);
  const em = await call('POST', '/api/rooms/conversation%3Ac2/emit', { body: { event: 'notice', data: { text: 'hello room' } } });
  assert.deepEqual(em, { status: 200, body: { room: 'conversation:c2', event: 'notice', sockets: 1 } });
  assert.deepEqual(await got, { text: 'hello room' });
  await quiet;
  d.close();
  e.close();
});

test('bad input: a 4xx with a message, counted; without the key a 401', async () => {
  const count = async () => (await h.metric(srv, 'parley_http_errors_total{code="400"}')) || 0;
  const before = await count();
  const cases = [
    ['POST', '/api/users/x/disconnect', { body: { reason: 42 } }],
    ['POST', '/api/users/x/disconnect', { raw: '[1]' }],
    ['POST', `/api/users/${'u'.repeat(200)}/disconnect`, {}],
    ['GET', '/api/users/%FF/sockets', {}],
    ['POST', '/api/rooms/r/leave', { body: {} }],
    ['POST', '/api/rooms/r/leave', { body: { userId: 7 } }],
    ['POST', '/api/rooms/r/leave', { body: { userId: 'u'.repeat(200) } }],
    ['POST', '/api/rooms/r/emit', { body: { data: 1 } }],
    ['POST', '/api/rooms/r/emit', { body: { event: 'disconnect' } }],
    ['POST', '/api/rooms/r/emit', { body: { event: 'x'.repeat(200) } }],
  ];
  for (const [method, path, opts] of cases) {
    const r = await call(method, path, opts);
    assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(opts)}: ${JSON.stringify(r)}`);
    assert.equal(typeof r.body.message, 'string');
  }
  assert.equal(await count(), before + cases.length);
  const nokey = await call('GET', '/api/users/ann/sockets', { key: null });
  assert.equal(nokey.status, 401);
});
