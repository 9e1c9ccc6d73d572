// presence.test.js - user:online on a user's first socket and user:offline
// after the last one closes and a grace period passes (a quick reconnect
// fires neither), sent only to the sockets that share a conversation with
// the user; lastSeen persisted, and answered by presence:query and the API.
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

const online = (user) => (d) => d.userId === user;

test('user:online goes to those who share a conversation with the user, once per user; user:offline after the last socket and the grace period', async () => {
  await api('PUT', '/api/conversations/p-team/members', { members: ['pa', 'pb'] });
  const pb = await srv.client('pb');
  const stranger = await srv.client('stranger');
  const pa1 = await srv.client('pa');
  assert.deepEqual(await pb.next('user:online'), { userId: 'pa' });
  const pa2 = await srv.client('pa');
  assert.equal(await pb.none('user:online', 200), true, 'a second socket announced the user again');

  pa1.close();
  assert.equal(await pb.none('user:offline', GRACE + 300), true, 'offline while a socket was left');
  const closedAt = Date.now();
  pa2.close();
  assert.equal(await pb.none('user:offline', GRACE - 150), true, 'offline before the grace period');
  assert.deepEqual(await pb.next('user:offline', 2000), { userId: 'pa' });
  assert.ok(Date.now() - closedAt >= GRACE, 'offline came too early');
  assert.equal(await stranger.none('user:online', 50), true);
  assert.equal(await stranger.none('user:offline', 50), true);

  const [p] = (await pb.request('presence:query', { userIds: ['pa'] })).users;
  assert.equal(p.online, false);
  assert.ok(Math.abs(Date.parse(p.lastSeen) - closedAt) < 1000, `lastSeen ${p.lastSeen}`);
});

test('a quick reconnect within the grace period fires neither user:offline nor user:online', async () => {
  await api('PUT', '/api/conversations/p-flaky/members', { members: ['flaky', 'watcher'] });
  const watcher = await srv.client('watcher');
  let f = await srv.client('flaky');
  assert.deepEqual(await watcher.next('user:online'), { userId: 'flaky' });
  f.close();
  await parley.sleep(50);
  f = await srv.client('flaky');
  assert.equal(await watcher.none('user:offline', GRACE + 300), true);
  assert.equal(await watcher.none('user:online', 10), true);
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
  assert.equal(await w1.none('user:online', 200), true, 'a conversation the user was in heard it again');
  // The socket that joined two-2 goes first: two-2 must still hear it.
  a2.close();
  await parley.sleep(50);
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
