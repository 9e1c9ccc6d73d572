// authz.test.js - who may hear and touch a members-only conversation
// (issue 15, authorization): a membership change takes the sockets of
// non-members out of the conversation's room (conversation:left with
// reason "removed") and every fan-out reaches members only; no store write
// comes before its check, and a message that is not yours answers exactly
// like one that does not exist; every event is checked (typing:stop too);
// presence:query answers only for users who share a conversation with the
// asker; joining and leaving does not grow the Lua heap.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const parley = require('../harness/parley-testing');

const KEY = 'authz-test-key';
const GRACE = 150;
let srv;

test.before(async () => {
  srv = await parley.start({ plugins: ['testkit', 'reactions', 'edits', 'files'],
    pluginPath: [`${__dirname}/../plugins`],
    env: { PARLEY_API_KEY: KEY },
    config: `{ plugin_config = { chat = { presence_grace_ms = ${GRACE}, sweep_ms = 50 },
      files = { interval_ms = 0 } } }` });
});
test.after(() => srv && srv.stop());

async function api(method, p, body, url = srv.url) {
  const r = await fetch(`${url}${p}`, { method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, body: await r.json() };
}

const members = (conv, list) => api('PUT', `/api/conversations/${conv}/members`, { members: list });
const text = (conversationId, content) => ({ conversationId, type: 'text', content });

// The statuses of message `id` as the history (HTTP API) shows them.
async function statuses(conv, id) {
  const { body } = await api('GET', `/api/conversations/${conv}/messages`);
  const m = body.messages.find((x) => x.messageId === id);
  assert.ok(m, `message ${id} is in ${conv}'s history`);
  return m.statuses || {};
}

// An error ack with the id it names taken out: what a prober can compare.
const shape = (ack, id) => ({ status: ack.status, statusCode: ack.statusCode,
  message: String(ack.message).split(id).join('<id>') });

// A message id that no message has (ids are 16 hex digits, time-derived).
const NO_SUCH_ID = '0000000000000001';

test('members registered without a user who joined while the conversation was open: their socket leaves the room, is told, and hears nothing more', async () => {
  const ann = await srv.client('op-ann');
  const bob = await srv.client('op-bob');
  const eve = await srv.client('op-eve');
  for (const c of [ann, bob, eve]) await c.join('authz-was-open');
  assert.equal((await members('authz-was-open', ['op-ann', 'op-bob'])).status, 200);

  assert.deepEqual(await eve.next('conversation:left'),
    { conversationId: 'authz-was-open', success: true, reason: 'removed' });
  assert.equal(await ann.none('conversation:left', 100), true, 'a member was told it left');

  const sent = await ann.request('message:send', text('authz-was-open', 'members only now'));
  assert.equal(sent.status, 'sent', JSON.stringify(sent));
  assert.equal((await bob.next('message:received')).messageId, sent.messageId);
  assert.equal(await eve.none('message:received'), true, 'the evicted socket got message:received');

  assert.deepEqual(await ann.request('typing:start', { conversationId: 'authz-was-open' }), { success: true });
  assert.equal((await bob.next('typing:start')).userId, 'op-ann');
  assert.equal(await eve.none('typing:start'), true, 'the evicted socket got typing:start');
  // And it cannot come back.
  assert.equal((await eve.join('authz-was-open')).statusCode, 403);
});

test('a member removed by PUT members: evicted, and no fan-out of the conversation reaches them (messages, typing, status, presence, reactions, edits, files)', async () => {
  assert.equal((await members('authz-team', ['tm-ann', 'tm-bob', 'tm-carl'])).status, 200);
  const ann = await srv.client('tm-ann');
  const bob = await srv.client('tm-bob');
  const carl = await srv.client('tm-carl');
  for (const c of [ann, bob, carl]) await c.join('authz-team');
  // carl's own message, before he goes: its status changes must not reach him after.
  const mine = await carl.request('message:send', text('authz-team', 'before I go'));
  const earlier = await ann.request('message:send', text('authz-team', 'to react to'));
  for (const c of [ann, bob, carl]) {
    await c.next('message:received');
    await c.next('message:received');
  }

  assert.equal((await members('authz-team', ['tm-ann', 'tm-bob'])).status, 200);
  assert.deepEqual(await carl.next('conversation:left'),
    { conversationId: 'authz-team', success: true, reason: 'removed' });

  const sent = await ann.request('message:send', text('authz-team', 'after carl'));
  assert.equal((await bob.next('message:received')).messageId, sent.messageId);
  await ann.request('typing:start', { conversationId: 'authz-team' });
  await bob.next('typing:start');
  await ann.request('typing:stop', { conversationId: 'authz-team' });
  await bob.next('typing:stop');
  // Read by both recipients left, carl's message moves to read.
  for (const c of [ann, bob]) {
    assert.deepEqual(await c.request('message:read', { conversationId: 'authz-team', messageIds: [mine.messageId] }),
      { success: true, updated: 1 });
  }
  const moved = await ann.next('message:status');
  assert.deepEqual({ messageId: moved.messageId, status: moved.status }, { messageId: mine.messageId, status: 'read' });
  await ann.request('reaction:add', { conversationId: 'authz-team', messageId: earlier.messageId, emoji: '+1' });
  await bob.next('message:reaction');
  await ann.request('message:edit', { messageId: earlier.messageId, content: 'edited' });
  await bob.next('message:edited');
  await ann.request('file:progress', { conversationId: 'authz-team', transferId: 't1', bytes: 1, total: 2 });
  await bob.next('file:progress');
  for (const event of ['message:received', 'typing:start', 'typing:stop', 'message:status',
    'message:reaction', 'message:edited', 'file:progress']) {
    assert.equal(await carl.none(event, 50), true, `the removed member got ${event}`);
  }
  assert.equal((await carl.request('messages:sync', { conversationId: 'authz-team' })).statusCode, 403);

  // Nor do they hear each other's presence any more (they share nothing).
  carl.close();
  assert.equal(await ann.none('user:offline', GRACE + 400), true, 'members heard the removed user go offline');
  const bob2 = await srv.client('tm-bob');
  bob.close();
  bob2.close();
  assert.deepEqual(await ann.next('user:offline', GRACE + 2000), { userId: 'tm-bob' });
});

test('a removed sender can no longer edit or delete their message for everyone', async () => {
  assert.equal((await members('authz-edit', ['ed-ann', 'ed-bob'])).status, 200);
  const ann = await srv.client('ed-ann');
  const bob = await srv.client('ed-bob');
  await ann.join('authz-edit');
  await bob.join('authz-edit');
  const sent = await bob.request('message:send', text('authz-edit', 'mine'));
  await ann.next('message:received');
  assert.equal((await members('authz-edit', ['ed-ann'])).status, 200);
  const edit = await bob.request('message:edit', { messageId: sent.messageId, content: 'rewritten' });
  assert.equal(edit.statusCode, 404, JSON.stringify(edit));
  const del = await bob.request('message:delete', { messageId: sent.messageId, forEveryone: true });
  assert.equal(del.statusCode, 404, JSON.stringify(del));
  assert.equal(await ann.none('message:edited', 100), true);
  assert.equal(await ann.none('message:deleted', 50), true);
});

test('message:read / message:delivered of another conversation\'s message write nothing and answer exactly like a message that does not exist', async () => {
  assert.equal((await members('authz-private', ['pv-ann', 'pv-bob'])).status, 200);
  const ann = await srv.client('pv-ann');
  const mallory = await srv.client('pv-mallory');
  const sent = await ann.request('message:send', text('authz-private', 'secret'));
  const id = sent.messageId;
  for (const event of ['message:read', 'message:delivered']) {
    // Named under a conversation mallory may act in (an open one)...
    const theirs = await mallory.request(event, { conversationId: 'mallory-open', messageIds: [id] });
    const none = await mallory.request(event, { conversationId: 'mallory-open', messageIds: [NO_SUCH_ID] });
    assert.equal(theirs.statusCode, 404, JSON.stringify(theirs));
    assert.deepEqual(shape(theirs, id), shape(none, NO_SUCH_ID));
    // ...and under the members-only one itself.
    const inside = await mallory.request(event, { conversationId: 'authz-private', messageIds: [id] });
    const insideNone = await mallory.request(event, { conversationId: 'authz-private', messageIds: [NO_SUCH_ID] });
    assert.deepEqual(shape(inside, id), shape(insideNone, NO_SUCH_ID));
  }
  assert.deepEqual(await statuses('authz-private', id), { 'pv-bob': 'sent' },
    'a refused mark was written to the message\'s statuses');
});

test('a list of ids with one bad id is refused whole: nothing is written for the good ones', async () => {
  const ann = await srv.client('ls-ann');
  const bob = await srv.client('ls-bob');
  await ann.join('authz-list');
  await bob.join('authz-list');
  const sent = await ann.request('message:send', text('authz-list', 'one'));
  await bob.next('message:received');
  const ack = await bob.request('message:read', { conversationId: 'authz-list', messageIds: [sent.messageId, NO_SUCH_ID] });
  assert.equal(ack.statusCode, 404, JSON.stringify(ack));
  assert.deepEqual(await statuses('authz-list', sent.messageId), { 'ls-bob': 'sent' });
  assert.equal(await ann.none('message:status', 100), true);
});

test('edits: a message of a conversation that is not yours answers like one that does not exist', async () => {
  assert.equal((await members('authz-edits-private', ['ep-ann', 'ep-bob'])).status, 200);
  const ann = await srv.client('ep-ann');
  const mallory = await srv.client('ep-mallory');
  const { messageId } = await ann.request('message:send', text('authz-edits-private', 'hands off'));
  for (const [event, extra] of [['message:edit', { content: 'x' }], ['message:delete', { forEveryone: true }],
    ['message:delete', { forEveryone: false }]]) {
    const theirs = await mallory.request(event, { messageId, ...extra });
    const none = await mallory.request(event, { messageId: NO_SUCH_ID, ...extra });
    assert.equal(theirs.statusCode, 404, `${event} ${JSON.stringify(extra)}: ${JSON.stringify(theirs)}`);
    assert.deepEqual(shape(theirs, messageId), shape(none, NO_SUCH_ID), `${event} ${JSON.stringify(extra)}`);
  }
});

test('typing:stop from a non-member is refused and does not reach the members-only room; typing needs the socket in the room', async () => {
  assert.equal((await members('authz-typing', ['ty-ann', 'ty-bob'])).status, 200);
  const ann = await srv.client('ty-ann');
  const mallory = await srv.client('ty-mallory');
  await ann.join('authz-typing');
  const stop = await mallory.request('typing:stop', { conversationId: 'authz-typing' });
  assert.equal(stop.statusCode, 403, JSON.stringify(stop));
  assert.equal(await ann.none('typing:stop'), true, 'a non-member\'s typing:stop reached the room');
  assert.match(srv.logs(), /refused \(403\) typing:stop from socket \S+ \(ty-mallory\)/);

  // A member who has not joined: typing is for the sockets in the conversation.
  const bob = await srv.client('ty-bob');
  const start = await bob.request('typing:start', { conversationId: 'authz-typing' });
  assert.equal(start.statusCode, 403, JSON.stringify(start));
  assert.match(start.message, /join the conversation/);
  assert.equal(await ann.none('typing:start'), true);
  await bob.join('authz-typing');
  assert.deepEqual(await bob.request('typing:start', { conversationId: 'authz-typing' }), { success: true });
  assert.equal((await ann.next('typing:start')).userId, 'ty-bob');
});

test('presence:query answers only for users who share a conversation with the asker: co-members, co-joined open conversations, oneself', async () => {
  assert.equal((await members('authz-presence', ['pr-ann', 'pr-bob'])).status, 200);
  const ann = await srv.client('pr-ann');
  await srv.client('pr-bob');
  const lobbyA = await srv.client('pr-lobby-a');
  const lobbyB = await srv.client('pr-lobby-b');
  const stranger = await srv.client('pr-stranger');
  await lobbyA.join('authz-lobby');
  await lobbyB.join('authz-lobby');
  const ids = ['pr-ann', 'pr-bob', 'pr-lobby-a', 'pr-lobby-b', 'pr-stranger', 'pr-never-seen'];
  const seen = async (c) => (await c.request('presence:query', { userIds: ids })).users.map((u) => u.userId);
  assert.deepEqual(await seen(stranger), ['pr-stranger']);
  assert.deepEqual(await seen(ann), ['pr-ann', 'pr-bob']);
  assert.deepEqual(await seen(lobbyA), ['pr-lobby-a', 'pr-lobby-b']);
  const [bob] = (await ann.request('presence:query', { userIds: ['pr-bob'] })).users;
  assert.deepEqual(bob, { userId: 'pr-bob', online: true, lastSeen: null });
  // Leaving the open conversation ends the sharing.
  await lobbyB.request('conversation:leave', { conversationId: 'authz-lobby' });
  assert.deepEqual(await seen(lobbyA), ['pr-lobby-a']);
  // The HTTP API answers for the backend, which is trusted.
  assert.equal((await api('GET', '/api/users/pr-ann/presence')).body.online, true);
});

test('presence_query = "everyone" opens presence:query to any user; a bad value is refused at start', async () => {
  const open = await parley.start({ config: '{ plugin_config = { messages = { presence_query = "everyone" } } }' });
  try {
    const a = await open.client('ev-a');
    await open.client('ev-b');
    const { users } = await a.request('presence:query', { userIds: ['ev-b'] });
    assert.deepEqual(users, [{ userId: 'ev-b', online: true, lastSeen: null }]);
  } finally {
    await open.stop();
  }
  const bad = await parley.start({ config: '{ plugin_config = { messages = { presence_query = "nobody" } } }' })
    .then((s) => s, (e) => e);
  if (!(bad instanceof Error)) {
    await bad.stop();
    assert.fail('parley started with presence_query = "nobody"');
  }
  assert.match(bad.message, /plugin_config\.messages\.presence_query: must be one of shared, everyone/);
});

test('a user in more open conversations than chat.lua remembers before pruning still goes offline to each of them', async () => {
  const first = await srv.client('many-first');
  const last = await srv.client('many-last');
  await first.join('authz-many-0');
  await last.join('authz-many-69');
  const u = await srv.client('many-u');
  for (let i = 0; i < 70; i++) assert.equal((await u.join(`authz-many-${i}`)).success, true);
  assert.deepEqual(await first.next('user:online'), { userId: 'many-u' });
  assert.deepEqual(await last.next('user:online'), { userId: 'many-u' });
  u.close();
  assert.deepEqual(await first.next('user:offline', GRACE + 2000), { userId: 'many-u' });
  assert.deepEqual(await last.next('user:offline', GRACE + 2000), { userId: 'many-u' });
});

// ---- the Lua heap under join/leave churn ----

async function luaHeap(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(/^parley_lua_heap_bytes (\d+)$/m);
  assert.ok(m, 'parley_lua_heap_bytes is in /metrics');
  return Number(m[1]);
}

// A plain WebSocket that counts the frames it gets.
async function counting(url, userId) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/messages?userId=${userId}`);
  ws.got = 0;
  ws.waiters = [];
  ws.on('message', () => {
    ws.got++;
    ws.waiters = ws.waiters.filter((w) => (ws.got >= w.n ? (w.resolve(), false) : true));
  });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.until = (n) => (ws.got >= n ? Promise.resolve()
    : new Promise((resolve) => ws.waiters.push({ n, resolve })));
  return ws;
}

// `pairs` join/leave pairs of distinct conversations over one socket, in
// batches; each event is answered with one frame (joined / left).
async function churn(ws, from, pairs) {
  const BATCH = 250;
  for (let i = from; i < from + pairs; i += BATCH) {
    const frames = [];
    for (let j = i; j < Math.min(i + BATCH, from + pairs); j++) {
      const conversationId = `churn-conversation-number-${j}`;
      frames.push(JSON.stringify({ event: 'conversation:join', data: { conversationId } }));
      frames.push(JSON.stringify({ event: 'conversation:leave', data: { conversationId } }));
    }
    const expect = ws.got + frames.length;
    for (const f of frames) ws.send(f);
    await ws.until(expect);
  }
}

test('join/leave churn does not grow the Lua heap with the number of pairs (leaving forgets)', { timeout: 120000 }, async (t) => {
  const s = await parley.start({});
  try {
    const ws = await counting(s.url, 'churner');
    const N = 5000;
    await churn(ws, 0, N);
    const afterN = await luaHeap(s.url);
    await churn(ws, N, 3 * N);
    const after4N = await luaHeap(s.url);
    ws.close();
    // Remembering each conversation cost about 270 bytes a pair: 3N more
    // pairs would add 4 MB. Forgetting them leaves the collector's slack.
    t.diagnostic(`Lua heap after ${N} pairs: ${afterN} bytes; after ${4 * N}: ${after4N}`);
    assert.ok(after4N - afterN < 1024 * 1024,
      `the heap grew by ${after4N - afterN} bytes over ${3 * N} more join/leave pairs (${afterN} -> ${after4N})`);
  } finally {
    await s.stop();
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
