// cluster-features.test.js - the features across nodes (issue 19 item 4):
// connection state recovery when the client comes back on ANOTHER node
// (its node alive and holding the socket, or killed with -9), with its
// socket id, rooms and missed events, once, in order; a pid of another
// user's or never issued gives a new session there too; the log a node
// keeps in Redis is bounded and expires; typing, receipts, messages:sync,
// the HTTP API, reactions and edits across nodes. Three nodes (and a
// fourth that is killed) on one PostgreSQL database and a private Redis on
// a Unix socket, as cluster.test.js starts them; socket.io-client from npm.
// Runs with PARLEY_TEST_PG and Debian's redis-server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const { redisSkip, privateRedis } = require('./redis-kit');
const skip = redisSkip;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-cfeat-'));
const redis = privateRedis(dir);
const { sock, cli } = redis;
const redisStart = () => redis.start();
const shared = path.join(dir, 'store');
const API_KEY = 'cluster-features-key';
// Typing expires fast, so that its expiry across nodes is seen at once.
const CONFIG = path.join(dir, 'parley.conf.lua');
fs.writeFileSync(CONFIG, 'return { plugin_config = { chat = { typing_ttl_ms = 300, sweep_ms = 50 } } }\n');
const nodes = {};


async function node(name, env = {}) {
  nodes[name] = await h.startParley({
    env: { PARLEY_DATA_DIR: shared, PARLEY_REDIS: `unix://${sock}`, PARLEY_NODE_ID: name,
      PARLEY_RECOVERY_WINDOW: '60000', PARLEY_API_KEY: API_KEY,
      PARLEY_PLUGINS: 'testkit,reactions,edits', PARLEY_CONFIG: CONFIG, ...env },
  });
  return nodes[name];
}

// A socket.io-client socket for `userId` on `srv` that records every event
// it gets, in order, with its arguments as given (the offset last).
async function client(srv, userId, opts = {}) {
  const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'], ...opts });
  h.recordEvents(s);
  await h.connected(s);
  return s;
}

const until = h.untilLogged;

const request = (s, event, data) => s.timeout(5000).emitWithAck(event, data);
const join = (s, conv) => request(s, 'conversation:join', { conversationId: conv });
let seq = 0;
const send = (s, conv, content) => request(s, 'message:send',
  { conversationId: conv, clientMessageId: `cf${++seq}`, type: 'text', content });
const contents = (log) => log.filter((e) => e.event === 'message:received').map((e) => e.args[0].content);

// Points the client's manager at another node (as a balancer would send it
// elsewhere) and connects again with the pid and offset it kept.
function reconnectTo(s, srv) {
  s.io.uri = `${srv.url}`;
  s.io.opts.hostname = '127.0.0.1';
  s.io.opts.port = String(srv.port);
  s.io.opts.secure = false;
  const done = h.connected(s);
  s.connect();
  return done;
}

async function drop(srv, s) {
  const held = await h.metric(srv, 'parley_recovery_held');
  const gone = new Promise((resolve) => s.once('disconnect', resolve));
  s.io.engine.close();
  await gone;
  await h.waitFor(() => h.metric(srv, 'parley_recovery_held'), (v) => v === held + 1, 'the socket held');
}

test.before(async () => {
  if (skip) return;
  await redisStart();
  await node('A');
  await node('B');
  await node('C');
});

process.once('exit', () => {
  redis.stopNow();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.after(async () => {
  try {
    for (const [name, srv] of Object.entries(nodes)) {
      if (name === 'K') continue; // killed on purpose
      const st = await srv.stop();
      assert.equal(st.code, 0, srv.logs());
    }
  } finally {
    await redis.stop();
    h.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- connection state recovery across nodes ----

test('recovery on another node: a socket dropped on A comes back on B with its id, rooms and every missed event, once, in order; A lets its held socket go', { skip, timeout: 60000 }, async () => {
  const a = await client(nodes.A, 'xr-a');
  const peer = await client(nodes.C, 'xr-peer');
  await join(a, 'xr-1');
  await join(peer, 'xr-1');
  await send(peer, 'xr-1', 'before');
  await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'before');
  const id = a.id;
  const pid = a._pid;
  assert.match(pid, /^[A-Za-z0-9_-]{20}[0-9a-f]{16}$/, 'a cluster pid ends with its node\'s incarnation');

  await drop(nodes.A, a);
  for (const content of ['one', 'two', 'three']) await send(peer, 'xr-1', content);
  await peer.timeout(5000).emitWithAck('test:broadcast-args', 'conversation:xr-1', 1, 'two',
    { three: 3 }, Buffer.from([0, 255, 4]));
  const seen = a.log.length;
  await reconnectTo(a, nodes.B);
  assert.equal(a.recovered, true, 'socket.recovered on B');
  assert.equal(a.id, id, 'the same socket id');
  assert.equal(a._pid, pid, 'the same pid');
  // Something new after the recovery, through the room it was in on A: B
  // put it back in the room.
  await send(peer, 'xr-1', 'four');
  const last = await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'four', seen);
  const got = a.log.slice(seen, last + 1).filter((e) => e.event !== 'conversation:updated');
  assert.deepEqual(got.map((e) => e.event === 'message:received' ? e.args[0].content : e.event),
    ['one', 'two', 'three', 'test:broadcast-args', 'four'], 'every missed event once, in order, then the new one');
  const bin = got[3].args;
  assert.deepEqual(bin.slice(0, 3), [1, 'two', { three: 3 }]);
  assert.ok(Buffer.from(bin[3]).equals(Buffer.from([0, 255, 4])), 'the binary argument survives');
  // A's held socket went, without waiting for its window.
  await h.waitFor(() => h.metric(nodes.A, 'parley_recovery_held'), (v) => v === 0, 'A let the held socket go');
  assert.equal(await h.metric(nodes.B, 'parley_cluster_recovery_claims_total{result="recovered"}') >= 1, true);

  // And once more, from B to C: the session is B's now.
  await drop(nodes.B, a);
  await send(peer, 'xr-1', 'five');
  const seen2 = a.log.length;
  await reconnectTo(a, nodes.C);
  assert.equal(a.recovered, true, 'recovered again, on C');
  assert.equal(a.id, id);
  await send(peer, 'xr-1', 'six');
  await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'six', seen2);
  assert.deepEqual(contents(a.log.slice(seen2)), ['five', 'six']);
  a.close();
  peer.close();
});

test('recovery after the first node was killed with -9: the client comes back on C with what the room got after the death', { skip, timeout: 60000 }, async () => {
  await node('K');
  const a = await client(nodes.K, 'xk-a');
  const peer = await client(nodes.B, 'xk-peer');
  await join(a, 'xk-1');
  await join(peer, 'xk-1');
  await send(peer, 'xk-1', 'alive');
  await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'alive');
  const id = a.id;
  const gone = new Promise((resolve) => a.once('disconnect', resolve));
  await nodes.K.kill('SIGKILL');
  await gone;
  for (const content of ['after-1', 'after-2']) await send(peer, 'xk-1', content);
  const seen = a.log.length;
  await reconnectTo(a, nodes.C);
  assert.equal(a.recovered, true, 'socket.recovered on C although K is dead');
  assert.equal(a.id, id, 'the same socket id');
  await send(peer, 'xk-1', 'after-3');
  await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'after-3', seen);
  assert.deepEqual(contents(a.log.slice(seen)), ['after-1', 'after-2', 'after-3'],
    'what the room got while K was dead, once, then what is new');
  a.close();
  peer.close();
});

test('another user\'s pid, or a pid never issued, gives a plain new session on another node; the owner can still recover it', { skip, timeout: 60000 }, async () => {
  const victim = await client(nodes.A, 'xv-victim');
  await join(victim, 'xv-1');
  const pid = victim._pid;
  const offset = victim._lastOffset;
  await drop(nodes.A, victim);
  const before = await h.metric(nodes.B, 'parley_cluster_recovery_claims_total{result="other_user"}');
  const thief = h.sioClient(nodes.B, '/messages', { query: { userId: 'xv-thief' }, transports: ['websocket'] });
  thief._pid = pid;
  thief._lastOffset = offset;
  await h.connected(thief);
  assert.equal(thief.recovered, false, 'another user\'s pid is no recovery');
  assert.notEqual(thief.id, victim.id);
  assert.equal(await h.metric(nodes.B, 'parley_cluster_recovery_claims_total{result="other_user"}'), before + 1);
  const forged = h.sioClient(nodes.B, '/messages', { query: { userId: 'xv-victim' }, transports: ['websocket'] });
  forged._pid = 'x'.repeat(20) + '0123456789abcdef';
  forged._lastOffset = '1';
  await h.connected(forged);
  assert.equal(forged.recovered, false, 'a pid never issued is no recovery');
  // The victim's session was left alone: it recovers (on C).
  await reconnectTo(victim, nodes.C);
  assert.equal(victim.recovered, true, 'the owner still recovers it');
  for (const s of [victim, thief, forged]) s.close();
});

test('the log in Redis is bounded: past PARLEY_REDIS_RECOVERY_MAX_EVENTS a session that missed a dropped event starts anew; the keys expire', { skip, timeout: 60000 }, async () => {
  const small = await node('S', { PARLEY_REDIS_RECOVERY_MAX_EVENTS: '5' });
  const a = await client(small, 'xb-a');
  const peer = await client(nodes.B, 'xb-peer');
  await join(a, 'xb-1');
  await join(peer, 'xb-1');
  await drop(small, a);
  // The held socket on S keeps receiving (and logging): more than 5.
  for (let i = 0; i < 8; i++) await send(peer, 'xb-1', `m${i}`);
  await h.waitFor(() => h.metric(small, 'parley_cluster_recovery_dropped_total'), (v) => v >= 3, 'S dropped the oldest');
  const inc = cli('GET', '{parley}:node:S');
  assert.ok(Number(cli('XLEN', `{parley}:rlog:${inc}`)) <= 5, 'the stream holds at most the cap');
  const ttl = Number(cli('PTTL', `{parley}:rlog:${inc}`));
  assert.ok(ttl > 0 && ttl <= 75000, `the log expires (PTTL ${ttl})`);
  assert.ok(Number(cli('PTTL', `{parley}:rsess:${inc}`)) > 0, 'the records expire');
  const hist = Number(cli('PTTL', '{parley}:hist:/messages:room:conversation:xb-1'));
  assert.ok(hist > 0, `a room's history expires (PTTL ${hist})`);
  await reconnectTo(a, nodes.C);
  assert.equal(a.recovered, false, 'a new session: the log lost what it missed');
  assert.equal(await h.metric(nodes.C, 'parley_cluster_recovery_claims_total{result="log_lost"}') >= 1, true);
  a.close();
  peer.close();
});

// ---- the features across nodes ----

test('typing across nodes: typing:start from A reaches B and C, and its expiry (no typing:stop sent) reaches them too', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'ft-a');
  const bob = await client(nodes.B, 'ft-b');
  const carol = await client(nodes.C, 'ft-c');
  for (const s of [alice, bob, carol]) await join(s, 'ft-1');
  await request(alice, 'typing:start', { conversationId: 'ft-1', isTyping: true });
  for (const s of [bob, carol]) {
    const i = await until(s, (e) => e.event === 'typing:start');
    assert.equal(s.log[i].args[0].userId, 'ft-a');
    const j = await until(s, (e) => e.event === 'typing:stop', i);
    assert.deepEqual([s.log[j].args[0].userId, s.log[j].args[0].conversationId], ['ft-a', 'ft-1'],
      'the typing expired on A, and B and C heard it');
  }
  for (const s of [alice, bob, carol]) s.close();
});

test('receipts across nodes: message:delivered and message:read on B reach the sender on A as message:status', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'fr-a');
  const bob = await client(nodes.B, 'fr-b');
  for (const s of [alice, bob]) await join(s, 'fr-1');
  const sent = await send(alice, 'fr-1', 'read me');
  await until(bob, (e) => e.event === 'message:received' && e.args[0].messageId === sent.messageId);
  for (const status of ['delivered', 'read']) {
    const ack = await request(bob, `message:${status}`, { conversationId: 'fr-1', messageIds: [sent.messageId] });
    assert.equal(ack.success, true);
    const i = await until(alice, (e) => e.event === 'message:status' && e.args[0].status === status);
    assert.equal(alice.log[i].args[0].messageId, sent.messageId);
    assert.equal(alice.log[i].args[0].userId, 'fr-b');
  }
  alice.close();
  bob.close();
});

test('messages:sync on C returns what was sent on A (one store)', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'fs-a');
  const carol = await client(nodes.C, 'fs-c');
  for (const s of [alice, carol]) await join(s, 'fs-1');
  await send(alice, 'fs-1', 'sync one');
  await send(alice, 'fs-1', 'sync two');
  const got = await request(carol, 'messages:sync', { conversationId: 'fs-1' });
  const texts = JSON.stringify(got);
  assert.match(texts, /sync one/);
  assert.match(texts, /sync two/);
  alice.close();
  carol.close();
});

test('the HTTP API on B reaches sockets on A and C: a POSTed message arrives on both', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'fh-a');
  const carol = await client(nodes.C, 'fh-c');
  for (const s of [alice, carol]) await join(s, 'fh-1');
  const r = await fetch(`${nodes.B.url}/api/conversations/fh-1/messages`, {
    method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ senderId: 'fh-a', clientMessageId: 'fh-m1', type: 'text', content: 'via B' }),
  });
  assert.equal(r.status, 201, await r.text());
  for (const s of [alice, carol]) {
    await until(s, (e) => e.event === 'message:received' && e.args[0].content === 'via B');
  }
  alice.close();
  carol.close();
});

test('reactions made at the same moment on three nodes are all kept: the map changes by kv.cas, none lost', { skip, timeout: 60000 }, async () => {
  const names = ['A', 'B', 'C'];
  const users = [];
  for (let i = 0; i < 12; i++) users.push(await client(nodes[names[i % 3]], `fq-${i}`));
  for (const s of users) await join(s, 'fq-1');
  const sent = await send(users[0], 'fq-1', 'everyone reacts');
  // All at once: each node reads the map while the others write it.
  const acks = await Promise.all(users.map((s, i) =>
    request(s, 'reaction:add', { conversationId: 'fq-1', messageId: sent.messageId, emoji: `e${i}` })));
  for (const ack of acks) assert.equal(ack.success, true, JSON.stringify(ack));
  const got = await request(users[1], 'messages:sync', { conversationId: 'fq-1' });
  const message = JSON.stringify(got).includes('everyone reacts') &&
    (got.messages || got.data?.messages || []).find((m) => m.messageId === sent.messageId);
  const want = Object.fromEntries(users.map((_, i) => [`fq-${i}`, `e${i}`]));
  assert.deepEqual(message && message.reactions, want, JSON.stringify(got));
  for (const s of users) s.close();
});

test('reactions and edits (plugins) across nodes: a reaction on C and an edit on A reach the members on the other nodes', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'fp-a');
  const bob = await client(nodes.B, 'fp-b');
  const carol = await client(nodes.C, 'fp-c');
  for (const s of [alice, bob, carol]) await join(s, 'fp-1');
  const sent = await send(alice, 'fp-1', 'react to me');
  await until(carol, (e) => e.event === 'message:received' && e.args[0].messageId === sent.messageId);
  const ack = await request(carol, 'reaction:add', { conversationId: 'fp-1', messageId: sent.messageId, emoji: '+1' });
  assert.equal(ack.success, true, JSON.stringify(ack));
  for (const s of [alice, bob]) {
    const i = await until(s, (e) => e.event === 'message:reaction');
    assert.deepEqual([s.log[i].args[0].userId, s.log[i].args[0].emoji], ['fp-c', '+1']);
  }
  const edit = await request(alice, 'message:edit', { messageId: sent.messageId, content: 'edited on A' });
  assert.equal(edit.success, true, JSON.stringify(edit));
  for (const s of [bob, carol]) {
    const i = await until(s, (e) => e.event === 'message:edited');
    assert.equal(s.log[i].args[0].messageId, sent.messageId);
  }
  for (const s of [alice, bob, carol]) s.close();
});
