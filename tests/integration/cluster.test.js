// cluster.test.js - cluster mode (issue 19): three parley nodes on one
// PostgreSQL database and one Redis (a private redis-server on a Unix
// socket, started here) share their broadcasts. A conversation's members
// on other nodes get a message:send and typing once; a user's sockets on
// two nodes both get what goes to user:{id}; :except is honoured there too;
// 50 messages sent fast from one node arrive in one order everywhere; a
// node with no member of a room is not subscribed to it and receives
// nothing for it; Redis killed: each node serves its own sockets and
// /healthz says degraded and why; Redis back: the nodes subscribe again by
// themselves and cross-node delivery resumes. Each node keeps its liveness
// key. Runs with PARLEY_TEST_PG (the
// PostgreSQL pass of tests/run.sh) and Debian's redis-server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');
const { Client } = require('../harness/parley-testing');
const parser = require('socket.io-msgpack-parser');

const { redisSkip, privateRedis } = require('./redis-kit');
const skip = redisSkip;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-cluster-'));
const redis = privateRedis(dir);
const { sock, cli, shardSubscribers } = redis;
const redisStart = () => redis.start();
const redisKill = () => redis.stop();
// One data directory for the three: on PostgreSQL it names the database
// (the harness), so the nodes share one store.
const shared = path.join(dir, 'store');
const nodes = {};

// The private Redis: no persistence, a Unix socket only; resolves once it
// answers PING.
// Subscribers of a room's channel, over every node (Redis's own count).

async function node(name) {
  nodes[name] = await h.startParley({
    env: { PARLEY_DATA_DIR: shared, PARLEY_REDIS: `unix://${sock}`, PARLEY_NODE_ID: name },
  });
  return nodes[name];
}

async function client(srv, userId) {
  const c = new Client(h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] }));
  await h.connected(c.socket);
  return c;
}

const metric = (srv, series) => h.metric(srv, series);
const healthz = async (srv) => (await fetch(`${srv.url}/healthz`)).json();
const text = (conversationId, content, clientMessageId) =>
  ({ conversationId, clientMessageId, type: 'text', content });
const broadcast = (c, data) => c.request('test:broadcast', data);

test.before(async () => {
  if (skip) return;
  await redisStart();
  await node('A');
  await node('B');
  await node('C');
});

// The Redis goes with this file however it ends: a failed stop below, or
// the runner's SIGTERM at its timeout (the harness exits then).
process.once('exit', () => {
  redis.stopNow();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.after(async () => {
  try {
    for (const srv of Object.values(nodes)) {
      const st = await srv.stop();
      assert.equal(st.code, 0, srv.logs());
    }
  } finally {
    await redisKill();
    h.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cluster mode on the LMDB store is refused at start, saying it needs PostgreSQL', { timeout: 30000 }, async () => {
  const p = await h.spawnParley({ env: { PARLEY_STORE: '', PARLEY_REDIS: 'unix:///nonexistent.sock' } });
  const st = await p.exited;
  assert.equal(st.code, 2, p.logs());
  assert.match(p.logs(), /cluster mode \(PARLEY_REDIS\) needs the shared store: PARLEY_STORE=postgresql:\/\//);
});

test('Redis unreachable at start: a clear error naming it, exit 1', { skip, timeout: 60000 }, async () => {
  const p = await h.spawnParley({ env: { PARLEY_DATA_DIR: shared, PARLEY_REDIS: `unix://${dir}/none.sock` } });
  const st = await p.exited;
  assert.equal(st.code, 1, p.logs());
  assert.match(p.logs(), new RegExp(`Redis unreachable at unix://${dir}/none.sock`));
  assert.doesNotMatch(p.logs(), /listening/);
});

test('a message:send on node A reaches the conversation\'s members on B and C, each once', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'alice');
  const bob = await client(nodes.B, 'bob');
  const carol = await client(nodes.C, 'carol');
  for (const c of [alice, bob, carol]) await c.join('conv-1');
  const ack = await alice.request('message:send', text('conv-1', 'hello all', 'm-1'));
  assert.equal(ack.status, 'sent');
  for (const c of [bob, carol, alice]) {
    const got = await c.next('message:received');
    assert.equal(got.messageId, ack.messageId);
    assert.equal(got.content, 'hello all');
  }
  // Once: a second message is the marker; nothing came between.
  const second = await alice.request('message:send', text('conv-1', 'again', 'm-2'));
  for (const c of [bob, carol]) {
    assert.equal((await c.next('message:received')).messageId, second.messageId,
      'the next message:received is the second message, not a copy of the first');
  }
  for (const c of [alice, bob, carol]) c.close();
});

test('a broadcast to two rooms a remote socket is in reaches it once (the node drops the second copy)', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'alice2');
  const bob = await client(nodes.B, 'bob2');
  await alice.join('conv-2');
  await bob.join('conv-2');
  const dupBefore = await metric(nodes.B, 'parley_cluster_dropped_total{reason="duplicate"}');
  await broadcast(alice, { rooms: ['conversation:conv-2', 'user:bob2'], event: 'two:rooms', data: { n: 1 } });
  await broadcast(alice, { rooms: ['user:bob2'], event: 'two:marker', data: {} });
  assert.equal(await bob.noneBefore('two:rooms', 'two:marker'), false, 'it came before the marker');
  assert.deepEqual(await bob.next('two:rooms'), { n: 1 });
  assert.equal(await bob.none('two:rooms', 0), true, 'one copy only');
  assert.equal(await metric(nodes.B, 'parley_cluster_dropped_total{reason="duplicate"}'), dupBefore + 1,
    'B received the broadcast through both rooms and delivered it once');
  alice.close();
  bob.close();
});

test('a broadcast with a binary argument from node A reaches a JSON client on B, a msgpack client on B and a plain WebSocket on C', { skip, timeout: 60000 }, async () => {
  const sender = h.sioClient(nodes.A, '/messages', { auth: { userId: 'bin-a' }, transports: ['websocket'] });
  const json = h.sioClient(nodes.B, '/messages', { auth: { userId: 'bin-json' }, transports: ['websocket'] });
  const packed = h.sioClient(nodes.B, '/messages', { parser, auth: { userId: 'bin-mp' }, transports: ['websocket'] });
  await Promise.all([sender, json, packed].map((c) => h.connected(c)));
  for (const c of [json, packed]) await c.timeout(3000).emitWithAck('test:join', { room: 'bin-room' });
  const plain = h.plainClient(nodes.C, 'userId=bin-plain');
  await plain.opened;
  plain.sendJson({ event: 'test:join', data: { room: 'bin-room' }, ack: 1 });
  await plain.next((f) => f.ack === 1);
  const [gotJson, gotPacked] = [h.once(json, 'test:broadcast-args'), h.once(packed, 'test:broadcast-args')];
  await sender.timeout(3000).emitWithAck('test:broadcast-args', 'bin-room', Buffer.from('hi'), { n: 1 });
  for (const [bin, obj] of [await gotJson, await gotPacked]) {
    assert.ok(Buffer.from(bin).equals(Buffer.from('hi')));
    assert.deepEqual(obj, { n: 1 });
  }
  assert.deepEqual(await plain.next((f) => f.event === 'test:broadcast-args'),
    { event: 'test:broadcast-args', args: [Buffer.from('hi').toString('base64'), { n: 1 }] });
  for (const c of [sender, json, packed, plain]) c.close();
});

test('typing:start on node A reaches the conversation on B and C, not the typer', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'typer');
  const bob = await client(nodes.B, 'reader-b');
  const carol = await client(nodes.C, 'reader-c');
  for (const c of [alice, bob, carol]) await c.join('conv-typing');
  await alice.request('typing:start', { conversationId: 'conv-typing', isTyping: true });
  for (const c of [bob, carol]) {
    const got = await c.next('typing:start');
    assert.equal(got.conversationId, 'conv-typing');
    assert.equal(got.userId, 'typer');
  }
  assert.equal(await alice.none('typing:start', 200), true);
  for (const c of [alice, bob, carol]) c.close();
});

test('a user\'s two devices on two nodes both get what goes to user:{id}', { skip, timeout: 60000 }, async () => {
  const sender = await client(nodes.A, 'sender');
  const phone = await client(nodes.B, 'dave');
  const laptop = await client(nodes.C, 'dave');
  await broadcast(sender, { rooms: ['user:dave'], event: 'direct:note', data: { to: 'dave' } });
  assert.deepEqual(await phone.next('direct:note'), { to: 'dave' });
  assert.deepEqual(await laptop.next('direct:note'), { to: 'dave' });
  for (const c of [sender, phone, laptop]) c.close();
});

test(':except is honoured on the other nodes: an excepted room, and the excepted sender\'s socket (its user\'s other device elsewhere still gets it)', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'ex-a');
  const aliceElsewhere = await client(nodes.C, 'ex-a');
  const bob = await client(nodes.B, 'ex-b');
  const carol = await client(nodes.C, 'ex-c');
  for (const c of [alice, aliceElsewhere, bob, carol]) await c.join('conv-ex');
  await broadcast(alice, { rooms: ['conversation:conv-ex'], exceptRooms: ['user:ex-b'], exceptSelf: true,
    event: 'ex:hello', data: { n: 1 } });
  assert.deepEqual(await carol.next('ex:hello'), { n: 1 });
  assert.deepEqual(await aliceElsewhere.next('ex:hello'), { n: 1 }, 'only the sending socket is skipped');
  // The marker goes the same way after it: what bob and alice would have
  // got is there by then.
  await broadcast(alice, { rooms: ['conversation:conv-ex'], event: 'ex:marker', data: {} });
  assert.equal(await bob.noneBefore('ex:hello', 'ex:marker'), true, 'bob is in the excepted room user:ex-b');
  assert.equal(await alice.noneBefore('ex:hello', 'ex:marker'), true, 'the sender\'s socket is excepted');
  for (const c of [alice, aliceElsewhere, bob, carol]) c.close();
});

test('50 messages sent fast into one conversation from node A arrive in the same order on A, B and C', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'fast');
  const bob = await client(nodes.B, 'fast-b');
  const carol = await client(nodes.C, 'fast-c');
  for (const c of [alice, bob, carol]) await c.join('conv-order');
  const acks = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    alice.request('message:send', text('conv-order', `n${i}`, `o-${i}`), 10000)));
  assert.equal(new Set(acks.map((a) => a.messageId)).size, 50);
  const orders = {};
  for (const [name, c] of Object.entries({ alice, bob, carol })) {
    orders[name] = [];
    for (let i = 0; i < 50; i++) orders[name].push((await c.next('message:received', 10000)).seq);
  }
  assert.deepEqual(orders.bob, orders.alice);
  assert.deepEqual(orders.carol, orders.alice);
  assert.deepEqual(orders.alice, [...orders.alice].sort((x, y) => x - y), 'in the order of their seq');
  for (const c of [alice, bob, carol]) c.close();
});

test('a node with no member of a room is not subscribed to it and receives nothing for it', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'lone-a');
  const bob = await client(nodes.B, 'lone-b');
  const carol = await client(nodes.C, 'lone-c');
  await alice.join('conv-lone');
  await bob.join('conv-lone');
  await h.waitFor(async () => shardSubscribers('conversation:conv-lone'), (n) => n === 2,
    'A and B follow the room\'s channel, C does not');
  const before = await metric(nodes.C, 'parley_cluster_received_total');
  await broadcast(alice, { rooms: ['conversation:conv-lone'], event: 'lone:hello', data: {} });
  await bob.next('lone:hello');
  // Through A's one publishing connection, after it: had C followed the
  // room, its copy would be in before this one.
  await broadcast(alice, { rooms: ['user:lone-c'], event: 'lone:marker', data: {} });
  await carol.next('lone:marker');
  assert.equal(await metric(nodes.C, 'parley_cluster_received_total'), before + 1, 'only the marker');
  // The last member leaves: the node stops following the room.
  bob.close();
  await h.waitFor(async () => shardSubscribers('conversation:conv-lone'), (n) => n === 1,
    'B left the room\'s channel with its last member');
  alice.close();
  carol.close();
});

test('a join is answered once its node follows the room in Redis: a message sent right after reaches the joiner on another node', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'sub-a');
  const bob = await client(nodes.B, 'sub-b');
  await alice.join('conv-sub');
  // Redis stops reading: B's subscription to the room (new to B) waits.
  redis.signal('SIGSTOP');
  let answered = false;
  let joined;
  try {
    joined = bob.join('conv-sub').then(() => { answered = true; });
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(answered, false, 'the join was answered before Redis had the subscription');
  } finally {
    redis.signal('SIGCONT');
  }
  await joined;
  // Answered: the subscription is in force already, no waiting here.
  assert.equal(shardSubscribers('conversation:conv-sub'), 2);
  const ack = await alice.request('message:send', text('conv-sub', 'right after the join', 's-1'));
  assert.equal((await bob.next('message:received')).messageId, ack.messageId);
  alice.close();
  bob.close();
});

test('inbox updates cross nodes: participants who follow their list on B and C get conversation:updated for a message sent on A, one who does not follow gets none', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'inbox-a');
  const bob = await client(nodes.B, 'inbox-b');
  const carol = await client(nodes.C, 'inbox-c');
  const dave = await client(nodes.B, 'inbox-d');
  for (const c of [alice, bob, carol, dave]) await c.join('conv-inbox');
  await bob.request('conversations:list', {});
  await carol.request('conversations:list', {});
  const ack = await alice.request('message:send', text('conv-inbox', 'to the lists', 'i-1'));
  for (const c of [bob, carol]) {
    const item = await c.next('conversation:updated');
    assert.equal(item.conversationId, 'conv-inbox');
    assert.equal(item.lastMessage.messageId, ack.messageId);
  }
  // dave follows no list: his next event is the marker, not an update.
  await broadcast(alice, { rooms: ['user:inbox-d'], event: 'inbox:marker', data: {} });
  assert.equal(await dave.noneBefore('conversation:updated', 'inbox:marker'), true);
  for (const c of [alice, bob, carol, dave]) c.close();
});

test('each node keeps a liveness key {parley}:node:<id> with a TTL', { skip, timeout: 60000 }, async () => {
  for (const name of ['A', 'B', 'C']) {
    assert.match(cli('GET', `{parley}:node:${name}`), /^[0-9a-f]{16}$/, `node ${name}'s key holds its incarnation`);
    const ttl = Number(cli('PTTL', `{parley}:node:${name}`));
    assert.ok(ttl > 0 && ttl <= 15000, `node ${name}'s key expires (PTTL ${ttl})`);
  }
});

test('Redis killed: each node serves its own sockets and /healthz says degraded; Redis back: the nodes subscribe again and cross-node delivery resumes', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'fault-a');
  const alice2 = await client(nodes.A, 'fault-a2');
  const bob = await client(nodes.B, 'fault-b');
  for (const c of [alice, alice2, bob]) await c.join('conv-fault');
  await redisKill();
  for (const srv of Object.values(nodes)) {
    await h.waitFor(() => metric(srv, 'parley_cluster_redis_up'), (v) => v === 0, 'redis_up falls to 0');
    const hz = await healthz(srv);
    assert.equal(hz.status, 'degraded');
    assert.match(hz.reason, /Redis unreachable at unix:\/\//);
  }
  // A's own sockets are still served, messages still stored.
  const ack = await alice.request('message:send', text('conv-fault', 'while Redis is away', 'f-1'));
  assert.equal(ack.status, 'sent');
  assert.equal((await alice2.next('message:received')).messageId, ack.messageId);

  await redisStart();
  for (const srv of Object.values(nodes)) {
    await h.waitFor(() => metric(srv, 'parley_cluster_redis_up'), (v) => v === 1, 'redis_up back to 1', 15000);
    assert.equal((await healthz(srv)).status, 'ok');
  }
  await h.waitFor(async () => shardSubscribers('conversation:conv-fault'), (n) => n === 2,
    'A and B subscribed again by themselves');
  assert.match(cli('GET', '{parley}:node:A'), /^[0-9a-f]{16}$/, 'the liveness key is set again');
  const after = await alice.request('message:send', text('conv-fault', 'Redis is back', 'f-2'));
  // The first went while Redis was away: it stayed on A (messages:sync is
  // how bob catches up); the second reaches him.
  assert.equal((await bob.next('message:received')).messageId, after.messageId);
  for (const c of [alice, alice2, bob]) c.close();
});
