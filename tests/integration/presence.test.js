// presence.test.js - user:online on a user's first socket and user:offline
// after the last one closes and a grace period passes (a quick reconnect
// fires neither), sent only to the sockets that share a conversation with
// the user; lastSeen persisted, and answered by presence:query and the API.
// "Nothing else came" is shown by a later event that must come after it,
// never by a quiet window; the grace period by a lower bound only (a busy
// machine can make an offline late, never early).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const parley = require('../harness/parley-testing');

const KEY = 'presence-key';
const GRACE = 300;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-presence-'));
let srv;

async function start() {
  srv = await parley.start({ env: { PARLEY_API_KEY: KEY, PARLEY_DATA_DIR: dataDir },
    config: `{ plugin_config = { chat = { presence_grace_ms = ${GRACE}, sweep_ms = 50 } } }` });
}
test.before(start);
test.after(() => srv.stop());

async function api(method, p, body) {
  const r = await fetch(`${srv.url}${p}`, { method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, body: await r.json() };
}

// Resolves once parley counts `n` sockets for `user` (it has seen a close).
async function socketsOf(user, n) {
  const deadline = Date.now() + 10000;
  while ((await api('GET', `/api/users/${user}/presence`)).body.sockets !== n) {
    if (Date.now() > deadline) assert.fail(`${user} never had ${n} sockets`);
    await parley.sleep(10);
  }
}

test('user:online goes to those who share a conversation with the user, once per user; user:offline after the last socket and the grace period', async () => {
  await api('PUT', '/api/conversations/p-team/members', { members: ['pa', 'pb', 'pc'] });
  const pb = await srv.client('pb');
  const stranger = await srv.client('stranger');
  const pa1 = await srv.client('pa');
  assert.deepEqual(await pb.next('user:online'), { userId: 'pa' });
  const pa2 = await srv.client('pa');
  // pc comes after pa's second socket: the next online pb hears is pc's.
  const pc = await srv.client('pc');
  assert.deepEqual(await pb.next('user:online'), { userId: 'pc' }, 'a second socket announced the user again');

  // pa's first socket goes, then pc: pc's offline comes a grace period
  // later, and pa, who still has a socket, must not come before it.
  pa1.close();
  await socketsOf('pa', 1);
  pc.close();
  assert.deepEqual(await pb.next('user:offline', 5000), { userId: 'pc' }, 'offline while a socket was left');

  const closedAt = Date.now();
  pa2.close();
  assert.deepEqual(await pb.next('user:offline', 5000), { userId: 'pa' });
  const heardAt = Date.now();
  assert.ok(heardAt - closedAt >= GRACE, `offline ${heardAt - closedAt} ms after the close: before the ${GRACE} ms grace`);
  // Anything sent to the stranger came before its own answer.
  await stranger.request('presence:query', { userIds: ['pa'] });
  assert.equal(await stranger.none('user:online', 0), true);
  assert.equal(await stranger.none('user:offline', 0), true);

  const [p] = (await pb.request('presence:query', { userIds: ['pa'] })).users;
  assert.equal(p.online, false);
  const seen = Date.parse(p.lastSeen);
  assert.ok(seen >= closedAt - 1 && seen <= heardAt, `lastSeen ${p.lastSeen} is not between the close and the offline`);
});

test('with no presence_grace_ms, the grace period is the README\'s 5 s: user:offline comes no sooner', { timeout: 60000 }, async () => {
  const plain = await parley.start({ env: { PARLEY_API_KEY: KEY } });
  try {
    const watcher = await plain.client('dflt-watcher');
    const user = await plain.client('dflt-user');
    await watcher.join('dflt');
    await user.join('dflt');
    const closedAt = Date.now();
    user.close();
    assert.deepEqual(await watcher.next('user:offline', 20000), { userId: 'dflt-user' });
    const after = Date.now() - closedAt;
    assert.ok(after >= 5000, `offline ${after} ms after the close, inside the 5 s default grace`);
  } finally {
    await plain.stop();
  }
});

test('a quick reconnect within the grace period fires neither user:offline nor user:online', async () => {
  await api('PUT', '/api/conversations/p-flaky/members', { members: ['flaky', 'watcher', 'steady'] });
  const watcher = await srv.client('watcher');
  let f = await srv.client('flaky');
  assert.deepEqual(await watcher.next('user:online'), { userId: 'flaky' });
  const steady = await srv.client('steady');
  assert.deepEqual(await watcher.next('user:online'), { userId: 'steady' });
  f.close();
  await socketsOf('flaky', 0);
  f = await srv.client('flaky');
  // steady leaves after flaky came back: its offline, a grace period
  // later, is the first thing watcher hears.
  steady.close();
  assert.deepEqual(await watcher.next('user:offline', 5000), { userId: 'steady' });
  assert.equal(await watcher.none('user:online', 0), true, 'the reconnect announced the user again');
  f.close();
});

test('in an open conversation, those who were in it with the user hear the user go offline', async () => {
  const x = await srv.client('open-x');
  const y = await srv.client('open-y');
  await x.join('open-lobby');
  await y.join('open-lobby');
  x.close();
  assert.deepEqual(await y.next('user:offline', 2000), { userId: 'open-x' });
});

test('a user in two open conversations: each hears user:online once, and user:offline after the last socket', async () => {
  const w1 = await srv.client('two-w1');
  const w2 = await srv.client('two-w2');
  await w1.join('two-1');
  await w2.join('two-2');
  const a1 = await srv.client('two-a');
  await a1.join('two-1');
  assert.deepEqual(await w1.next('user:online'), { userId: 'two-a' });
  const a2 = await srv.client('two-a');
  await a2.join('two-2');
  assert.deepEqual(await w2.next('user:online'), { userId: 'two-a' });
  await a2.join('two-1');
  // Someone else joins two-1 after: that is the next online w1 hears.
  const m = await srv.client('two-m');
  await m.join('two-1');
  assert.deepEqual(await w1.next('user:online'), { userId: 'two-m' }, 'a conversation the user was in heard it again');
  // The socket that joined two-2 goes first: two-2 must still hear it.
  a2.close();
  await socketsOf('two-a', 1);
  a1.close();
  assert.deepEqual(await w1.next('user:offline', 2000), { userId: 'two-a' });
  assert.deepEqual(await w2.next('user:offline', 2000), { userId: 'two-a' });
});

test('presence:query and the API: online users, a user\'s presence; lastSeen survives a restart', async () => {
  const q = await srv.client('query-me');
  const [me] = (await q.request('presence:query', { userIds: ['query-me'] })).users;
  assert.deepEqual(me, { userId: 'query-me', online: true, lastSeen: null });
  assert.ok((await api('GET', '/api/users/online')).body.users.includes('query-me'));
  const pres = (await api('GET', '/api/users/query-me/presence')).body;
  assert.deepEqual({ online: pres.online, sockets: pres.sockets }, { online: true, sockets: 1 });

  const seen = (await api('GET', '/api/users/pa/presence')).body.lastSeen;
  assert.equal(typeof seen, 'string');
  await srv.stop();
  await start();
  assert.equal((await api('GET', '/api/users/pa/presence')).body.lastSeen, seen);
  assert.deepEqual((await api('GET', '/api/users/never-seen/presence')).body,
    { userId: 'never-seen', online: false, lastSeen: null, sockets: 0 });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
