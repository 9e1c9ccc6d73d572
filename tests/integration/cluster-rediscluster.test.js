// cluster-rediscluster.test.js - cluster mode on a Redis Cluster (issue 19,
// item 2: "so it runs unchanged on a Redis Cluster"): three masters with a
// replica each (redis-server --cluster-enabled, joined by redis-cli
// --cluster create, on loopback ports) and three parley nodes on one
// PostgreSQL database, each given one master's address. Each node finds the three masters; a room's
// channel is followed on the master of its slot, and rooms spread over all
// three; messages cross nodes once each and in order in rooms on every
// master; a broadcast into rooms on two masters reaches a socket in both
// once; presence and the liveness keys live on the master of {parley};
// a room's slot moved to another master (a resharding): the nodes follow it
// there by themselves and delivery goes on; a master killed with -9 and
// its replica promoted: the nodes move to it, what was sent meanwhile is
// stored and caught up (cluster:resync, messages:sync), and with the master
// of {parley} killed presence goes on from its replica. "Nothing else came" is shown by
// a later marker event, never by a quiet window. Runs with PARLEY_TEST_PG
// (the PostgreSQL pass of tests/run.sh) and Debian's redis-server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');
const { Client } = require('../harness/parley-testing');
const { redisSkip, privateRedisCluster } = require('./redis-kit');
const skip = redisSkip;
const KEY = 'rediscluster-key';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-rcluster-'));
const redis = privateRedisCluster(dir, 3, 1);
// The masters' ports, as the cluster was made (a failover changes them).
let masters = [];
const shared = path.join(dir, 'store');
const nodes = {};
const opened = [];

const channelOf = (conv) => `parley:/messages:room:conversation:${conv}`;
const metric = (srv, series) => h.metric(srv, series);
const text = (conversationId, content, clientMessageId) =>
  ({ conversationId, clientMessageId, type: 'text', content });
const broadcast = (c, data) => c.request('test:broadcast', data);

async function node(name, port) {
  nodes[name] = await h.startParley({
    env: { PARLEY_DATA_DIR: shared, PARLEY_REDIS: `redis://127.0.0.1:${port}`, PARLEY_NODE_ID: name,
      PARLEY_API_KEY: KEY },
  });
  return nodes[name];
}

async function client(srv, userId) {
  const c = new Client(h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] }));
  await h.connected(c.socket);
  opened.push(c);
  return c;
}

// Conversation ids whose channels live on the master at `port`: `n` of them.
function convsOn(port, n, prefix) {
  const out = [];
  for (let i = 0; out.length < n; i++) {
    const conv = `${prefix}-${i}`;
    if (redis.masterOf(redis.slot(channelOf(conv))) === port) out.push(conv);
  }
  return out;
}

test.before(async () => {
  if (skip) return;
  await redis.start();
  masters = redis.map().map((m) => m.port);
  // Each node is given a different master: any one leads to all.
  await node('A', masters[0]);
  await node('B', masters[1]);
  await node('C', masters[2]);
});

process.once('exit', () => {
  redis.stopNow();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.after(async () => {
  try {
    for (const c of opened) c.close();
    for (const srv of Object.values(nodes)) {
      const st = await srv.stop();
      assert.equal(st.code, 0, srv.logs());
    }
  } finally {
    await redis.stop();
    h.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('each node finds the three masters and follows a room\'s channel on the master of its slot, the rooms spread over all three', { skip, timeout: 60000 }, async () => {
  for (const srv of Object.values(nodes)) {
    assert.equal(await metric(srv, 'parley_cluster_redis_shards'), 3, srv.logs());
    assert.equal(await metric(srv, 'parley_cluster_redis_up'), 1);
  }
  const alice = await client(nodes.A, 'spread-a');
  const bob = await client(nodes.B, 'spread-b');
  const convs = masters.flatMap((port) => convsOn(port, 2, 'spread'));
  for (const conv of convs) {
    await alice.join(conv);
    await bob.join(conv);
  }
  for (const conv of convs) {
    // Asked on the master of the slot: the subscriptions are there.
    assert.equal(redis.shardSubscribers(channelOf(conv)), 2, `A and B follow ${conv} on its master`);
  }
  for (const port of masters) {
    const here = redis.cli(port, 'PUBSUB', 'SHARDCHANNELS', 'parley:/messages:room:conversation:spread-*')
      .split('\n').filter(Boolean);
    assert.equal(here.length, 2, `the master on ${port} holds its two rooms' channels`);
  }
});

test('message:send crosses nodes in rooms on every master: each member gets each message once, in order', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'order-a');
  const bob = await client(nodes.B, 'order-b');
  const carol = await client(nodes.C, 'order-c');
  const convs = masters.map((port) => convsOn(port, 1, 'order')[0]);
  for (const conv of convs) for (const c of [alice, bob, carol]) await c.join(conv);
  const sent = [];
  for (const conv of convs) {
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      alice.request('message:send', text(conv, `n${i}`, `${conv}-${i}`), 10000)));
    sent.push(...acks.map((a) => a.messageId));
  }
  for (const [name, c] of Object.entries({ bob, carol })) {
    const got = [];
    for (let i = 0; i < sent.length; i++) got.push(await c.next('message:received', 10000));
    const byConv = {};
    for (const m of got) (byConv[m.conversationId] ||= []).push(m.seq);
    for (const conv of convs) {
      assert.equal(byConv[conv].length, 20, `${name} got the 20 of ${conv}`);
      assert.deepEqual(byConv[conv], [...byConv[conv]].sort((x, y) => x - y), `${name}: ${conv} in order`);
    }
    assert.equal(new Set(got.map((m) => m.messageId)).size, sent.length, `${name}: each once`);
  }
  // Once: the marker is the next thing each gets.
  await broadcast(alice, { rooms: ['user:order-b', 'user:order-c'], event: 'order:marker', data: {} });
  for (const c of [bob, carol]) assert.equal(await c.noneBefore('message:received', 'order:marker'), true);
});

test('a broadcast into rooms on two masters reaches a remote socket in both once', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'two-a');
  const bob = await client(nodes.B, 'two-b');
  const [x] = convsOn(masters[0], 1, 'two-x');
  const [y] = convsOn(masters[1], 1, 'two-y');
  for (const conv of [x, y]) {
    await alice.join(conv);
    await bob.join(conv);
  }
  const dupBefore = await metric(nodes.B, 'parley_cluster_dropped_total{reason="duplicate"}');
  await broadcast(alice, { rooms: [`conversation:${x}`, `conversation:${y}`], event: 'two:masters', data: { n: 1 } });
  assert.deepEqual(await bob.next('two:masters'), { n: 1 });
  // Both copies are in by the time the second one has been dropped.
  await h.waitFor(() => metric(nodes.B, 'parley_cluster_dropped_total{reason="duplicate"}'),
    (v) => v === dupBefore + 1, 'B drops the copy that came through the other master');
  await broadcast(alice, { rooms: [`conversation:${x}`, `conversation:${y}`], event: 'two:marker', data: {} });
  assert.equal(await bob.noneBefore('two:masters', 'two:marker'), true, 'one copy only');
});

test('presence and the nodes\' keys live on the master of {parley}: a user online on A is counted by C', { skip, timeout: 60000 }, async () => {
  const home = redis.masterOf(redis.slot('{parley}'));
  for (const name of ['A', 'B', 'C']) {
    assert.match(redis.cli(home, 'GET', `{parley}:node:${name}`), /^[0-9a-f]{16}$/, `node ${name}'s liveness key`);
  }
  const u = await client(nodes.A, 'pres-u');
  const get = async () => (await (await fetch(`${nodes.C.url}/api/users/pres-u/presence`,
    { headers: { Authorization: `Bearer ${KEY}` } })).json());
  await h.waitFor(get, (p) => p.sockets === 1 && p.online === true, 'C counts the socket on A');
  assert.ok(redis.cli(home, 'SMEMBERS', '{parley}:online:/messages').split('\n').includes('pres-u'));
  u.close();
  await h.waitFor(get, (p) => p.sockets === 0, 'C counts it out once it closed');
});

test('a room\'s slot moved to another master: the nodes follow its channel there by themselves and messages cross again', { skip, timeout: 60000 }, async () => {
  const alice = await client(nodes.A, 'move-a');
  const bob = await client(nodes.B, 'move-b');
  const [conv] = convsOn(masters[2], 1, 'move');
  await alice.join(conv);
  await bob.join(conv);
  const first = await alice.request('message:send', text(conv, 'before', 'move-1'));
  assert.equal((await bob.next('message:received')).messageId, first.messageId);
  const changes = await metric(nodes.B, 'parley_cluster_topology_changes_total');
  const slot = redis.slot(channelOf(conv));
  await redis.moveSlot(slot, masters[0]);
  assert.equal(redis.masterOf(slot), masters[0]);
  // The old master dropped the subscriptions; each node asks for the map
  // again and subscribes on the new one.
  await h.waitFor(() => redis.shardSubscribers(channelOf(conv)), (n) => n === 2,
    'A and B follow the channel on its new master', 15000);
  assert.ok(await metric(nodes.B, 'parley_cluster_topology_changes_total') > changes);
  await h.waitFor(() => metric(nodes.B, 'parley_cluster_redis_up'), (v) => v === 1, 'B is up again');
  await h.waitFor(() => metric(nodes.A, 'parley_cluster_redis_up'), (v) => v === 1, 'A is up again');
  const second = await alice.request('message:send', text(conv, 'after the move', 'move-2'));
  const got = await bob.next('message:received', 5000);
  assert.equal(got.messageId, second.messageId);
  assert.equal(got.content, 'after the move');
});

// Waits until `port` no longer serves a slot and every node is up again on
// the promoted replica.
async function failedOver(port) {
  await h.waitFor(() => redis.map().map((m) => m.port), (ps) => ps.length === 3 && !ps.includes(port),
    'a replica took the killed master\'s slots', 30000);
  for (const srv of Object.values(nodes)) {
    await h.waitFor(() => metric(srv, 'parley_cluster_redis_up'), (v) => v === 1,
      `node ${srv.port} is up on the new master`, 20000).catch((e) => {
      // What the node said of Redis, for whoever reads the failure.
      const said = srv.logs().split('\n').filter((l) => /cluster/.test(l)).slice(-30).join('\n');
      throw new Error(`${e.message}\n${said}\nmasters now: ${JSON.stringify(redis.map())}`);
    });
  }
}

test('a master killed with -9, its replica promoted: the nodes move to it; a message sent meanwhile is acked and stored, and the member on another node is told to catch up and finds it', { skip, timeout: 90000 }, async () => {
  const home = redis.masterOf(redis.slot('{parley}'));
  const victim = masters.find((p) => p !== home);
  const alice = await client(nodes.A, 'fo-a');
  const bob = await client(nodes.B, 'fo-b');
  const [conv] = convsOn(victim, 1, 'failover');
  await alice.join(conv);
  await bob.join(conv);
  const before = await alice.request('message:send', text(conv, 'before', 'fo-1'));
  assert.equal((await bob.next('message:received')).messageId, before.messageId);
  await redis.kill(victim);
  // The store takes it; the broadcast stays on A until the shard is back.
  const during = await alice.request('message:send', text(conv, 'during the failover', 'fo-2'), 10000);
  assert.equal(during.status, 'sent');
  await failedOver(victim);
  await bob.next('cluster:resync', 20000);
  const sync = await bob.request('messages:sync', { conversationId: conv, after: before.seq });
  assert.ok(sync.messages.some((m) => m.messageId === during.messageId), JSON.stringify(sync));
  await h.waitFor(() => redis.shardSubscribers(channelOf(conv)), (n) => n === 2,
    'A and B follow the channel on the promoted replica', 15000);
  const after = await alice.request('message:send', text(conv, 'after', 'fo-3'));
  let got = await bob.next('message:received', 5000);
  // The one sent during the failover may come first, or not at all (it
  // stayed on A): what counts is that the next one crosses.
  if (got.messageId === during.messageId) got = await bob.next('message:received', 5000);
  assert.equal(got.messageId, after.messageId);
});

test('the master of {parley} killed with -9: presence and the liveness keys go on from its promoted replica', { skip, timeout: 90000 }, async () => {
  const home = redis.masterOf(redis.slot('{parley}'));
  await redis.kill(home);
  await failedOver(home);
  const next = redis.masterOf(redis.slot('{parley}'));
  assert.notEqual(next, home);
  // The nodes write their keys again there (the replica may have missed
  // the last writes), and count a new socket across nodes.
  for (const name of ['A', 'B', 'C']) {
    await h.waitFor(() => redis.cli(next, 'PTTL', `{parley}:node:${name}`), (v) => Number(v) > 0,
      `node ${name}'s liveness key on the new master`, 15000);
  }
  const u = await client(nodes.A, 'fo-pres');
  const get = async () => (await (await fetch(`${nodes.C.url}/api/users/fo-pres/presence`,
    { headers: { Authorization: `Bearer ${KEY}` } })).json());
  await h.waitFor(get, (p) => p.sockets === 1 && p.online === true, 'C counts the socket on A', 15000);
  u.close();
  await h.waitFor(get, (p) => p.sockets === 0, 'C counts it out once it closed', 15000);
});
