// cluster-calls.test.js - the calls plugin, the rate limits and file
// progress across nodes (issue 19 item 4): a call whose caller and callee
// are on different nodes (invite, ring on the callee's devices on two other
// nodes, two devices answering at once: exactly one wins and the other is
// told it was answered elsewhere, offer/answer/ICE between the two nodes
// only, busy with a call set up on another node, missed decided once,
// hang-up and disconnect from either side, the callee's node killed with
// -9 ends the call for the caller); a rate limit per user across
// the cluster (sockets on two nodes); a file transfer's progress from one
// node to another. Three nodes on one PostgreSQL database and a private
// Redis on a Unix socket, as cluster-features.test.js starts them;
// socket.io-client from npm. Runs with PARLEY_TEST_PG and Debian's
// redis-server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const { redisSkip, privateRedis } = require('./redis-kit');
const skip = redisSkip;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-ccalls-'));
const redis = privateRedis(dir);
const { sock, cli } = redis;
const redisStart = () => redis.start();
const shared = path.join(dir, 'store');
// Calls ring 1.5 s; typing:start allows 6 per user in a window of
// 6 / 0.001 s (100 minutes), so that no refill comes within the test.
const RL_BURST = 6;
const RL_WINDOW_MS = RL_BURST / 0.001 * 1000;
const CONFIG = path.join(dir, 'parley.conf.lua');
fs.writeFileSync(CONFIG, `return { plugin_config = {
  calls = { ring_ms = 1500, sweep_ms = 50, lease_ms = 3000 },
  ratelimit = { events = { ["typing:start"] = { rate = 0.001, burst = ${RL_BURST} } } },
  files = { interval_ms = 0 },
} }\n`);
const nodes = {};


async function node(name) {
  nodes[name] = await h.startParley({
    env: { PARLEY_DATA_DIR: shared, PARLEY_REDIS: `unix://${sock}`, PARLEY_NODE_ID: name,
      PARLEY_PLUGINS: 'ratelimit,calls,files', PARLEY_CONFIG: CONFIG },
  });
  return nodes[name];
}

// A socket.io-client socket for `userId` on `srv` that records every event
// it gets, in order.
async function client(srv, userId) {
  const s = h.recordEvents(h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] }));
  await h.connected(s);
  return s;
}

// The first argument of the first `event` the socket got from index `from`
// on, once it is there.
async function next(s, event, from = 0, timeoutMs = 5000) {
  return s.log[await h.untilLogged(s, (x) => x.event === event, from, timeoutMs)].args[0];
}

// Waits until `n` nodes follow the user's room channel in Redis: a node
// subscribes when its first member joins, and the user's own room is joined
// in the connect hook, which cannot wait for the subscription as a join in
// a handler does (docs/cluster.md): a ring published before it reached
// Redis would not reach that node.
async function followed(room, n) {
  const ch = `parley:/messages:room:${room}`;
  await h.waitFor(() => Number(cli('PUBSUB', 'SHARDNUMSUB', ch).split('\n')[1]),
    (v) => v === n, `${n} nodes follow ${ch}`);
}

const count = (s, event) => s.log.filter((e) => e.event === event).length;
const request = (s, event, data) => s.timeout(5000).emitWithAck(event, data);

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
    for (const srv of Object.values(nodes)) {
      if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) continue;
      const st = await srv.stop();
      assert.equal(st.code, 0, srv.logs());
    }
  } finally {
    await redis.stop();
    h.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- calls ----

test('a call from A rings the callee\'s devices on B and C; both answer at once: exactly one wins, the other is answered elsewhere; offer/answer/ICE go between the two nodes only; the callee hangs up', { skip, timeout: 60000 }, async () => {
  const caller = await client(nodes.A, 'cc-alice');
  const phone = await client(nodes.B, 'cc-bob');
  const laptop = await client(nodes.C, 'cc-bob');
  await followed('user:cc-bob', 2);
  await followed('user:cc-alice', 1);
  const { callId } = await request(caller, 'call:invite', { toUserId: 'cc-bob', kind: 'video' });
  assert.equal(typeof callId, 'string');
  for (const dev of [phone, laptop]) {
    const inc = await next(dev, 'call:incoming');
    assert.deepEqual({ callId: inc.callId, kind: inc.kind, from: inc.from.id }, { callId, kind: 'video', from: 'cc-alice' });
  }
  const answers = await Promise.all([phone, laptop].map((d) => request(d, 'call:accept', { callId })));
  const winners = answers.filter((a) => a.success === true).length;
  assert.equal(winners, 1, `exactly one device wins: ${JSON.stringify(answers)}`);
  const [won, lost] = answers[0].success ? [phone, laptop] : [laptop, phone];
  assert.equal(answers[answers[0].success ? 1 : 0].statusCode, 409);
  assert.deepEqual(await next(caller, 'call:accepted'), { callId, userId: 'cc-bob' });
  assert.deepEqual(await next(lost, 'call:answered-elsewhere'), { callId });

  await request(caller, 'call:offer', { callId, sdp: 'v=0 offer' });
  assert.deepEqual(await next(won, 'call:offer'), { callId, sdp: 'v=0 offer', from: 'cc-alice' });
  await request(won, 'call:answer', { callId, sdp: 'v=0 answer' });
  assert.deepEqual(await next(caller, 'call:answer'), { callId, sdp: 'v=0 answer', from: 'cc-bob' });
  await request(won, 'call:ice-candidate', { callId, candidate: { c: 1 } });
  assert.deepEqual((await next(caller, 'call:ice-candidate')).candidate, { c: 1 });
  await request(caller, 'call:ice-candidate', { callId, candidate: { c: 2 } });
  assert.deepEqual((await next(won, 'call:ice-candidate')).candidate, { c: 2 });
  assert.equal((await request(lost, 'call:ice-candidate', { callId, candidate: {} })).statusCode, 403,
    'the device that lost signals into the call');

  assert.deepEqual(await request(won, 'call:end', { callId }), { success: true });
  assert.deepEqual(await next(caller, 'call:ended'), { callId, reason: 'ended', by: 'cc-bob' });
  assert.equal((await request(caller, 'call:offer', { callId, sdp: 'late' })).statusCode, 404);
  assert.equal(count(lost, 'call:offer') + count(lost, 'call:ice-candidate'), 0,
    'the other device got a signal of the call');
  assert.equal(count(won, 'call:ended'), 0, 'the side that hung up was told');
  // Both are free again: a new call between them rings.
  const again = await request(laptop, 'call:invite', { toUserId: 'cc-alice', kind: 'voice' });
  assert.equal(again.busy, undefined, JSON.stringify(again));
  await next(caller, 'call:incoming');
  await request(laptop, 'call:end', { callId: again.callId });
  for (const s of [caller, phone, laptop]) s.close();
});

test('busy: a callee in a call set up on B is busy for a caller on A; the caller on B hangs up and the callee on C is told', { skip, timeout: 60000 }, async () => {
  const x = await client(nodes.B, 'cb-x');
  const y = await client(nodes.C, 'cb-y');
  const z = await client(nodes.A, 'cb-z');
  await followed('user:cb-y', 1);
  const first = await request(x, 'call:invite', { toUserId: 'cb-y', kind: 'voice' });
  await next(y, 'call:incoming');
  assert.deepEqual(await request(y, 'call:accept', { callId: first.callId }), { success: true });
  await next(x, 'call:accepted');
  const second = await request(z, 'call:invite', { toUserId: 'cb-y', kind: 'voice' });
  assert.equal(second.busy, true, JSON.stringify(second));
  assert.deepEqual(await next(z, 'call:busy'), { callId: second.callId, userId: 'cb-y' });
  assert.equal((await request(y, 'call:invite', { toUserId: 'cb-z', kind: 'voice' })).statusCode, 409,
    'a user in a call on C started another on C');
  assert.deepEqual(await request(x, 'call:end', { callId: first.callId }), { success: true });
  assert.deepEqual(await next(y, 'call:ended'), { callId: first.callId, reason: 'ended', by: 'cb-x' });
  for (const s of [x, y, z]) s.close();
});

test('missed: nobody answers a call from A; the caller and both devices (B, C) get call:missed once', { skip, timeout: 60000 }, async () => {
  const a = await client(nodes.A, 'cm-a');
  const b1 = await client(nodes.B, 'cm-b');
  const b2 = await client(nodes.C, 'cm-b');
  await followed('user:cm-b', 2);
  await followed('user:cm-a', 1);
  const { callId } = await request(a, 'call:invite', { toUserId: 'cm-b', kind: 'voice' });
  await next(b1, 'call:incoming');
  await next(b2, 'call:incoming');
  for (const s of [a, b1, b2]) assert.equal((await next(s, 'call:missed', 0, 8000)).callId, callId);
  // Another call rings and ends, then a message passes: anything sent
  // after the miss has arrived by then, and a second miss would be there.
  const again = await request(a, 'call:invite', { toUserId: 'cm-b', kind: 'voice' });
  await request(a, 'call:end', { callId: again.callId });
  for (const s of [b1, b2]) await next(s, 'call:ended');
  for (const s of [a, b1, b2]) assert.equal(count(s, 'call:missed'), 1, `${s.id}: ${JSON.stringify(s.log.map((e) => e.event))}`);
  assert.equal((await request(b1, 'call:accept', { callId })).statusCode, 404, 'a missed call was answered');
  for (const s of [a, b1, b2]) s.close();
});

test('disconnects: the caller on A leaves while the callee\'s devices on B and C ring, and each stops; an active call ends for the caller on B when the callee on C leaves', { skip, timeout: 60000 }, async () => {
  const a = await client(nodes.A, 'cd-a');
  const b1 = await client(nodes.B, 'cd-b');
  const b2 = await client(nodes.C, 'cd-b');
  await followed('user:cd-b', 2);
  const { callId } = await request(a, 'call:invite', { toUserId: 'cd-b', kind: 'video' });
  await next(b1, 'call:incoming');
  await next(b2, 'call:incoming');
  a.close();
  for (const dev of [b1, b2]) assert.deepEqual(await next(dev, 'call:ended'), { callId, reason: 'disconnected', by: 'cd-a' });

  const c = await client(nodes.B, 'cd-c');
  await followed('user:cd-c', 1);
  const call = await request(c, 'call:invite', { toUserId: 'cd-b', kind: 'voice' });
  const from = b2.log.length;
  await next(b2, 'call:incoming', from);
  assert.deepEqual(await request(b2, 'call:accept', { callId: call.callId }), { success: true });
  await next(c, 'call:accepted');
  b2.close();
  assert.deepEqual(await next(c, 'call:ended'), { callId: call.callId, reason: 'disconnected', by: 'cd-b' });
  // Free again.
  const again = await request(c, 'call:invite', { toUserId: 'cd-b', kind: 'voice' });
  assert.equal(again.busy, undefined, JSON.stringify(again));
  await request(c, 'call:end', { callId: again.callId });
  for (const s of [b1, c]) s.close();
});

test('the callee\'s node killed with -9 mid-call: the caller on A is told the call ended, once, and can call someone else at once; every survivor hears of the death once', { skip, timeout: 90000 }, async () => {
  await node('D');
  const a = await client(nodes.A, 'cg-a');
  const b = await client(nodes.D, 'cg-b');
  const c = await client(nodes.C, 'cg-c');
  await followed('user:cg-b', 1);
  await followed('user:cg-c', 1);
  const { callId } = await request(a, 'call:invite', { toUserId: 'cg-b', kind: 'video' });
  await next(b, 'call:incoming');
  assert.deepEqual(await request(b, 'call:accept', { callId }), { success: true });
  await next(a, 'call:accepted');
  await nodes.D.kill('SIGKILL');
  b.close();
  // D's liveness key expires (15 s after its last refresh), a survivor's
  // reap (every second) counts D out, and each node reads the death at its
  // next reap. A's refresh keeps the record and the caller's busy mark
  // alive meanwhile: without the death told, the call never ends.
  assert.deepEqual(await next(a, 'call:ended', 0, 30000), { callId, reason: 'disconnected', by: 'cg-b' });
  assert.equal((await request(a, 'call:offer', { callId, sdp: 'late' })).statusCode, 404, 'the record outlived the call');
  const again = await request(a, 'call:invite', { toUserId: 'cg-c', kind: 'voice' });
  assert.equal(typeof again.callId, 'string', JSON.stringify(again));
  assert.equal(again.busy, undefined, JSON.stringify(again));
  assert.equal((await next(c, 'call:incoming')).callId, again.callId);
  await request(a, 'call:end', { callId: again.callId });
  await next(c, 'call:ended');
  assert.equal(count(a, 'call:ended'), 1, JSON.stringify(a.log.map((e) => e.event)));
  // The death is in the stream once (one entry, however many reaps saw
  // D's tokens), and each node reads past it once (its cursor).
  assert.equal(cli('XLEN', '{parley}:gone'), '1');
  for (const n of ['A', 'B', 'C']) {
    await h.waitFor(() => h.metric(nodes[n], 'parley_cluster_nodes_gone_total'), (v) => v >= 1, `${n} told of D's death`);
    assert.equal(await h.metric(nodes[n], 'parley_cluster_nodes_gone_total'), 1, `${n} told of D's death twice`);
  }
  for (const s of [a, c]) s.close();
});

test('the caller\'s node killed with -9 while the call rings: each ringing device on the other nodes is told the call ended, once, and the callee can be called again', { skip, timeout: 90000 }, async () => {
  await node('E');
  const a = await client(nodes.E, 'cr-a');
  const b1 = await client(nodes.B, 'cr-b');
  const b2 = await client(nodes.C, 'cr-b');
  const c = await client(nodes.A, 'cr-c');
  await followed('user:cr-b', 2);
  const { callId } = await request(a, 'call:invite', { toUserId: 'cr-b', kind: 'voice' });
  await next(b1, 'call:incoming');
  await next(b2, 'call:incoming');
  await nodes.E.kill('SIGKILL');
  a.close();
  // Nobody is left to end the ringing on E (its sweep would have missed it,
  // its socket's disconnect hung up): the survivors do once they know E dead.
  for (const dev of [b1, b2]) {
    assert.deepEqual(await next(dev, 'call:ended', 0, 40000), { callId, reason: 'disconnected', by: 'cr-a' });
  }
  const again = await request(c, 'call:invite', { toUserId: 'cr-b', kind: 'voice' });
  assert.equal(again.busy, undefined, JSON.stringify(again));
  await next(b1, 'call:incoming', b1.log.findIndex((e) => e.event === 'call:ended'));
  await request(c, 'call:end', { callId: again.callId });
  for (const dev of [b1, b2]) {
    await h.untilLogged(dev, (x) => x.event === 'call:ended' && x.args[0].callId === again.callId, 0, 5000);
    assert.equal(dev.log.filter((e) => e.event === 'call:ended' && e.args[0].callId === callId).length, 1,
      'told once, though every survivor read the death');
    assert.equal(count(dev, 'call:missed'), 0);
  }
  for (const s of [b1, b2, c]) s.close();
});

// ---- rate limits ----

test('rate limit per user across the cluster: a user typing fast on A and B at once gets the burst in all, not per node', { skip, timeout: 60000 }, async () => {
  // The window is aligned on the clock: start well inside one.
  const into = Date.now() % RL_WINDOW_MS;
  if (RL_WINDOW_MS - into < 20000) await h.sleep(RL_WINDOW_MS - into + 100);
  const onA = await client(nodes.A, 'cr-u');
  const onB = await client(nodes.B, 'cr-u');
  for (const s of [onA, onB]) {
    assert.equal((await request(s, 'conversation:join', { conversationId: 'cr-1' })).success, true);
  }
  const typing = (s) => request(s, 'typing:start', { conversationId: 'cr-1', isTyping: true });
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => typing(i % 2 ? onB : onA)));
  const ok = answers.filter((a) => a.success === true).length;
  const refused = answers.filter((a) => a.statusCode === 429).length;
  assert.deepEqual({ ok, refused }, { ok: RL_BURST, refused: 10 - RL_BURST }, JSON.stringify(answers));
  // Another user is not limited by this one's count.
  const other = await client(nodes.C, 'cr-v');
  await request(other, 'conversation:join', { conversationId: 'cr-1' });
  assert.deepEqual(await typing(other), { success: true });
  for (const s of [onA, onB, other]) s.close();
});

// ---- files ----

test('file progress from a sender on A reaches the conversation\'s members on B and C, not the sender', { skip, timeout: 60000 }, async () => {
  const sender = await client(nodes.A, 'cf-s');
  const r1 = await client(nodes.B, 'cf-r1');
  const r2 = await client(nodes.C, 'cf-r2');
  for (const s of [sender, r1, r2]) {
    assert.equal((await request(s, 'conversation:join', { conversationId: 'cf-1' })).success, true);
  }
  await followed('conversation:cf-1', 3);
  const p = { conversationId: 'cf-1', transferId: 't1', bytes: 10, total: 100 };
  assert.deepEqual(await request(sender, 'file:progress', p), { relayed: true });
  assert.deepEqual(await request(sender, 'file:progress', { ...p, bytes: 100 }), { relayed: true });
  for (const r of [r1, r2]) {
    assert.deepEqual(await next(r, 'file:progress'), { ...p, userId: 'cf-s' });
    const from = r.log.findIndex((e) => e.event === 'file:progress') + 1;
    assert.equal((await next(r, 'file:progress', from)).bytes, 100);
  }
  assert.equal(count(sender, 'file:progress'), 0);
  for (const s of [sender, r1, r2]) s.close();
});
