// ratelimit: a token bucket per user and event, 429 over it, throttling of
// a socket that keeps pushing. `bash tests/plugin-test.sh plugins/ratelimit`
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('parley-testing');

let srv;
test.before(async () => {
  srv = await parley.start({ plugins: ['ratelimit'], config: `{ plugin_config = { ratelimit = {
    events = { ["typing:start"] = { rate = 2, burst = 3 } },
    throttle_after = 5, throttle_ms = 400 } } }` });
});
test.after(() => srv.stop());
test.after(parley.cleanup); // last: whatever a failed test left running

const typing = (c) => c.request('typing:start', { conversationId: 'rl', isTyping: true });
// A client in the conversation 'rl' (typing is for the sockets in it).
const typist = async (userId) => {
  const c = await srv.client(userId);
  assert.equal((await c.join('rl')).success, true);
  return c;
};

test('the burst passes, the next is refused with 429 (ack and error event), and the bucket refills at the rate', async () => {
  const a = await typist('rl-a');
  const started = Date.now();
  for (let i = 0; i < 3; i++) assert.deepEqual(await typing(a), { success: true });
  const refused = await typing(a);
  assert.deepEqual(refused, { status: 'error', statusCode: 429, message: 'rate limited: at most 2 typing:start per second' });
  assert.equal((await a.next('error')).statusCode, 429);
  // One token comes back 500 ms after the bucket began to empty (2 per
  // second), never sooner; ask until it is there, then it is spent.
  let back;
  for (;;) {
    back = await typing(a);
    if (back.success) break;
    assert.equal(back.statusCode, 429, JSON.stringify(back));
    assert.ok(Date.now() - started < 10000, 'no token came back in 10 s');
    await parley.sleep(50);
  }
  assert.ok(Date.now() - started >= 450, `a token came back ${Date.now() - started} ms after the burst began`);
  assert.equal((await typing(a)).statusCode, 429, 'more than the one token came back');
});

test('each user has their own bucket, shared by the user\'s devices; events without a limit are not limited', async () => {
  const b1 = await typist('rl-b');
  const b2 = await typist('rl-b');
  const c = await typist('rl-c');
  await typing(b1); await typing(b2); await typing(b1);
  assert.equal((await typing(b2)).statusCode, 429, 'the second device had its own bucket');
  assert.deepEqual(await typing(c), { success: true });
  for (let i = 0; i < 20; i++) assert.equal((await b1.request('conversation:join', { conversationId: `j${i}` })).success, true);
});

test('a socket that keeps pushing past the limit is not read for a while: its events wait in TCP', async () => {
  const f = await typist('rl-flood');
  const started = Date.now();
  const acks = await Promise.all(Array.from({ length: 40 }, () => typing(f)));
  const took = Date.now() - started;
  assert.ok(acks.filter((a) => a.statusCode === 429).length >= 30);
  assert.ok(took >= 350, `40 refused events answered in ${took} ms: the socket was not throttled`);
  const other = await typist('rl-calm');
  assert.deepEqual(await typing(other), { success: true });
});

test('events that came in one read with the one that throttled the socket wait too', async () => {
  // 40 events in one TCP write: the server has read them all when the
  // sixth refusal throttles the socket, and must still hold the rest back.
  const WebSocket = require('ws');
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket&userId=rl-burst`);
  const acks = [];
  let connected;
  const ready = new Promise((r) => { connected = r; });
  ws.on('message', (d) => {
    const m = d.toString();
    if (m.startsWith('40/messages,')) connected();
    const ack = /^43\/messages,(\d+)/.exec(m);
    if (ack) acks.push(Date.now());
  });
  await new Promise((r) => ws.once('open', r));
  ws.send('40/messages,{"userId":"rl-burst"}');
  await ready;
  let joined;
  const inRoom = new Promise((r) => { joined = r; });
  ws.on('message', (d) => { if (d.toString().startsWith('42/messages,["conversation:joined"')) joined(); });
  ws.send('42/messages,["conversation:join",{"conversationId":"rl"}]');
  await inRoom;
  const frames = [];
  for (let i = 0; i < 40; i++) {
    const text = Buffer.from(`42/messages,${i}["typing:start",{"conversationId":"rl","isTyping":true}]`);
    const mask = Buffer.from([1, 2, 3, 4]);
    const body = Buffer.from(text.map((b, j) => b ^ mask[j & 3]));
    frames.push(Buffer.from([0x81, 0x80 | text.length]), mask, body);
  }
  const started = Date.now();
  ws._socket.write(Buffer.concat(frames));
  while (acks.length < 40 && Date.now() - started < 5000) await parley.sleep(20);
  ws.close();
  assert.equal(acks.length, 40);
  assert.ok(acks[39] - started >= 350, `the last of 40 events read at once was answered after ${acks[39] - started} ms: not throttled`);
});

test('a bad ratelimit configuration stops parley at start', async () => {
  await assert.rejects(parley.start({ plugins: ['ratelimit'],
    config: '{ plugin_config = { ratelimit = { events = { ["x"] = { burst = 3 } } } } }' }),
  /plugin_config\.ratelimit\.events\[x\]\.rate is required/);
});
