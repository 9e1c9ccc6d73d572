// msgpack.test.js - socket.io-client with socket.io-msgpack-parser, beside
// JSON Socket.IO clients and plain WebSockets on the same server, with no
// setting: the first packet tells the parser. Connect with auth, events with
// acks, binary both ways, the server's requests, errors, rooms shared across
// all three kinds of client, over WebSocket and polling; a broadcast encoded
// once per parser; several arguments each way. Then msgpack that is not a Socket.IO packet, each closed
// and counted, a bystander unharmed.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const msgpack = require('notepack.io');
const parser = require('socket.io-msgpack-parser');
const h = require('./harness');

let srv;
test.before(async () => { srv = await h.startParley(); });
test.after(async () => {
  const st = await srv.stop();
  assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
});

function mp(userId, transports = ['websocket'], extra = {}) {
  return h.sioClient(srv, '/messages', { parser, auth: { userId }, transports, ...extra });
}

for (const transport of ['websocket', 'polling']) {
  test(`over ${transport}: a msgpack client connects with its auth, and the scripts see it`, async () => {
    const s = mp(`mp-auth-${transport}`, [transport]);
    await h.connected(s);
    const who = await s.timeout(2000).emitWithAck('test:whoami');
    assert.equal(who.userId, `mp-auth-${transport}`);
    assert.equal(who.id, s.id);
    assert.equal(who.transport, transport);
    assert.deepEqual(who.handshake.auth, { userId: `mp-auth-${transport}` });
    s.close();
  });

  test(`over ${transport}: events with acks carry JSON values and binaries both ways`, async () => {
    const s = mp(`mp-echo-${transport}`, [transport]);
    await h.connected(s);
    const value = { n: [0, -1, 2.5, 1.5e-7, 4294967296, 9007199254740991, -2147483649], s: 'é ✓ "q" \\ \n', t: true, f: false, z: null,
      nested: { a: [[{ b: 'c' }]] }, empty: {} };
    assert.deepEqual(await s.timeout(2000).emitWithAck('test:echo', value), value);
    const bin = Buffer.from([0, 1, 2, 0xff, 0xfe]);
    assert.deepEqual(await s.timeout(2000).emitWithAck('test:echo', bin), bin);
    const mixed = { name: 'a.bin', parts: [Buffer.from('one'), Buffer.alloc(0), Buffer.from([7])] };
    assert.deepEqual(await s.timeout(2000).emitWithAck('test:echo', mixed), mixed);
    // The server's own emit with a binary in it.
    const bounced = h.once(s, 'test:bounced');
    assert.equal(await s.timeout(2000).emitWithAck('test:bounce', { file: bin }), true);
    assert.deepEqual(await bounced, { file: bin });
    s.close();
  });
}

test('a msgpack client that begins on polling and upgrades goes on over the WebSocket', async () => {
  const s = mp('mp-upgrade', ['polling', 'websocket']);
  const upgraded = new Promise((resolve) => s.io.on('open', () => s.io.engine.once('upgrade', resolve)));
  await h.connected(s);
  await upgraded;
  const bin = Buffer.from([3, 1, 4]);
  assert.deepEqual(await s.timeout(2000).emitWithAck('test:echo', { bin }), { bin });
  assert.equal((await s.timeout(2000).emitWithAck('test:whoami')).transport, 'websocket');
  s.close();
});

test('the server asks a msgpack client with an ack, and gets its answer, binary included', async () => {
  const s = mp('mp-asked');
  await h.connected(s);
  s.on('question', (data, cb) => cb({ got: data, file: Buffer.from([1, 2, 3]) }));
  const answer = h.once(s, 'test:answer');
  await s.timeout(2000).emitWithAck('test:ask', { event: 'question', data: { q: 42 } });
  const a = await answer;
  assert.equal(a.error, null);
  assert.deepEqual(a.args[0], { got: { q: 42 }, file: Buffer.from([1, 2, 3]) });
  s.close();
});

test('an event a script refuses comes back as a msgpack error event and error ack', async () => {
  const s = mp('mp-refused');
  await h.connected(s);
  const err = h.once(s, 'error');
  const ack = await s.timeout(2000).emitWithAck('no:such:event', {});
  assert.equal(ack.status, 'error');
  assert.equal(typeof ack.statusCode, 'number');
  assert.deepEqual(await err, ack);
  s.close();
});

test('a refused connect gets a msgpack CONNECT_ERROR the client reads', async () => {
  const s = h.sioClient(srv, '/messages', { parser, transports: ['websocket'] });
  await assert.rejects(h.connected(s), (e) => {
    assert.equal(e.data && e.data.statusCode, 401, `connect_error: ${JSON.stringify(e)}`);
    return true;
  });
  s.close();
});

test('a script disconnecting a msgpack socket sends it a msgpack DISCONNECT', async () => {
  const s = mp('mp-kicked');
  await h.connected(s);
  const gone = h.once(s, 'disconnect');
  s.emit('test:disconnect-me');
  assert.equal(await gone, 'io server disconnect');
});

test('rooms are shared: msgpack, JSON Socket.IO and plain WebSocket clients each get the others\' broadcasts', async () => {
  const m = mp('room-mp');
  const j = h.sioClient(srv, '/messages', { auth: { userId: 'room-json' }, transports: ['websocket'] });
  const p = h.plainClient(srv, 'userId=room-plain');
  await h.connected(m);
  await h.connected(j);
  await p.opened;
  await m.timeout(2000).emitWithAck('test:join', { room: 'shared' });
  await j.timeout(2000).emitWithAck('test:join', { room: 'shared' });
  p.sendJson({ event: 'test:join', data: { room: 'shared' }, ack: 1 });
  await p.next((f) => f.ack === 1);

  const bin = Buffer.from([0xde, 0xad]);
  const toJson = h.once(j, 'hello');
  const toPlain = p.next((f) => f.event === 'hello');
  assert.equal(await m.timeout(2000).emitWithAck('test:broadcast',
    { rooms: ['shared'], exceptSelf: true, event: 'hello', data: { from: 'msgpack', bin } }), 2);
  assert.deepEqual(await toJson, { from: 'msgpack', bin });
  const plainFrame = await toPlain;
  assert.equal(plainFrame.data.from, 'msgpack');

  const toMp = h.once(m, 'hello');
  await j.timeout(2000).emitWithAck('test:broadcast', { rooms: ['shared'], exceptSelf: true, event: 'hello', data: { from: 'json' } });
  assert.deepEqual(await toMp, { from: 'json' });

  const toMp2 = h.once(m, 'hello');
  p.sendJson({ event: 'test:broadcast', data: { rooms: ['shared'], exceptSelf: true, event: 'hello', data: { from: 'plain' } }, ack: 2 });
  assert.deepEqual(await toMp2, { from: 'plain' });
  m.close();
  j.close();
  p.close();
});

test('a broadcast to many msgpack sockets is encoded once for them all', async () => {
  const sockets = [];
  for (let i = 0; i < 4; i++) {
    const s = mp(`once-${i}`);
    await h.connected(s);
    await s.timeout(2000).emitWithAck('test:join', { room: 'once' });
    sockets.push(s);
  }
  const got = sockets.slice(1).map((s) => h.once(s, 'fan'));
  const before = await h.metric(srv, 'parley_event_encodings_total');
  assert.equal(await sockets[0].timeout(2000).emitWithAck('test:broadcast',
    { rooms: ['once'], exceptSelf: true, event: 'fan', data: { n: 1 } }), 3);
  for (const g of got) assert.deepEqual(await g, { n: 1 });
  assert.equal(await h.metric(srv, 'parley_event_encodings_total'), before + 1);
  for (const s of sockets) s.close();
});

test('a broadcast to msgpack and JSON sockets is encoded once per parser', async () => {
  const sockets = [];
  for (let i = 0; i < 6; i++) {
    const s = i % 2 ? mp(`per-parser-${i}`)
      : h.sioClient(srv, '/messages', { auth: { userId: `per-parser-${i}` }, transports: ['websocket'] });
    await h.connected(s);
    await s.timeout(2000).emitWithAck('test:join', { room: 'per-parser' });
    sockets.push(s);
  }
  const bin = Buffer.from([1, 2]);
  const got = sockets.slice(1).map((s) => h.once(s, 'fan'));
  const before = await h.metric(srv, 'parley_event_encodings_total');
  assert.equal(await sockets[0].timeout(2000).emitWithAck('test:broadcast',
    { rooms: ['per-parser'], exceptSelf: true, event: 'fan', data: { bin } }), 5);
  for (const g of got) assert.deepEqual(await g, { bin });
  assert.equal(await h.metric(srv, 'parley_event_encodings_total'), before + 2);
  for (const s of sockets) s.close();
});

// ---- several arguments (the testkit's test:*-args events) ----

function ackOf(s, ...args) {
  return new Promise((resolve, reject) => {
    s.timeout(5000).emit(...args, (err, ...vals) => (err ? reject(err) : resolve(vals)));
  });
}

function argsOf(s, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    s.once(event, (...vals) => { clearTimeout(t); resolve(vals); });
  });
}

test('several arguments from a msgpack client: the handler gets them all, the ack gives them all back, binaries in two', async () => {
  const s = mp('mp-args');
  await h.connected(s);
  assert.deepEqual(await ackOf(s, 'test:args', 1, '2', { 3: [true] }), [1, '2', { 3: [true] }]);
  assert.deepEqual(await ackOf(s, 'test:args'), []);
  assert.deepEqual(await ackOf(s, 'test:args', null, 2, null), [null, 2, null]);
  assert.deepEqual(await ackOf(s, 'test:args', Buffer.from([1]), null, { b: Buffer.from([2, 3]) }),
    [Buffer.from([1]), null, { b: Buffer.from([2, 3]) }]);
  assert.deepEqual(await ackOf(s, 'test:error-first', 'a', 'b'), [null, { got: 2 }]);
  const bounced = argsOf(s, 'test:bounced-args');
  assert.deepEqual(await ackOf(s, 'test:bounce-args', 'x', Buffer.from([9]), 3), [3]);
  assert.deepEqual(await bounced, ['x', Buffer.from([9]), 3]);
  s.close();
});

test('the server asks a msgpack client with several arguments and gets several back', async () => {
  const s = mp('mp-ask-args');
  await h.connected(s);
  s.on('q', (a, b, cb) => cb(b, a, Buffer.from([7])));
  const answer = argsOf(s, 'test:answer-args');
  assert.deepEqual(await ackOf(s, 'test:ask-args', 'q', 'first', { second: Buffer.from([1]) }), [true]);
  assert.deepEqual(await answer, [null, { second: Buffer.from([1]) }, 'first', Buffer.from([7])]);
  s.close();
});

test('a broadcast of several arguments reaches msgpack, JSON and plain clients alike', async () => {
  const m = mp('args-room-mp');
  const j = h.sioClient(srv, '/messages', { auth: { userId: 'args-room-json' }, transports: ['websocket'] });
  const p = h.plainClient(srv, 'userId=args-room-plain');
  await h.connected(m);
  await h.connected(j);
  await p.opened;
  await m.timeout(2000).emitWithAck('test:join', { room: 'args-room' });
  await j.timeout(2000).emitWithAck('test:join', { room: 'args-room' });
  p.sendJson({ event: 'test:join', data: { room: 'args-room' }, ack: 1 });
  await p.next((f) => f.ack === 1);
  const toM = argsOf(m, 'test:broadcast-args');
  const toJ = argsOf(j, 'test:broadcast-args');
  const toP = p.next((f) => f.event === 'test:broadcast-args');
  assert.deepEqual(await ackOf(m, 'test:broadcast-args', 'args-room', 1, 'two', Buffer.from([3])), [3]);
  assert.deepEqual(await toM, [1, 'two', Buffer.from([3])]);
  assert.deepEqual(await toJ, [1, 'two', Buffer.from([3])]);
  const plainFrame = await toP;
  assert.equal(plainFrame.args.length, 3);
  assert.deepEqual(plainFrame.args.slice(0, 2), [1, 'two']);
  // And from a JSON sender to the msgpack client.
  const toM2 = argsOf(m, 'test:broadcast-args');
  await ackOf(j, 'test:broadcast-args', 'args-room', { a: 1 }, null, 'z');
  assert.deepEqual(await toM2, [{ a: 1 }, null, 'z']);
  m.close();
  j.close();
  p.close();
});

test('msgpack bad input: thousands of arguments get the error event 400 and an error ack, counted as max_args', async () => {
  const s = mp('mp-many-args');
  await h.connected(s);
  const series = 'parley_limits_total{limit="max_args"}';
  const before = (await h.metric(srv, series)) || 0;
  const err = h.once(s, 'error');
  const ack = await ackOf(s, 'test:args', ...Array.from({ length: 3000 }, (_, i) => i));
  assert.equal(ack.length, 1);
  assert.equal(ack[0].statusCode, 400, `ack: ${JSON.stringify(ack)}`);
  assert.equal((await err).statusCode, 400);
  assert.equal(await h.metric(srv, series), before + 1);
  assert.deepEqual(await ackOf(s, 'test:args', 'still', 'here'), ['still', 'here']);
  s.close();
});

// ---- bad input: raw Engine.IO WebSockets speaking msgpack ----

async function rawSession() {
  const ws = h.rawEngineWs(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
  await ws.opened;
  await ws.next((f) => typeof f === 'string' && f[0] === '0');
  return ws;
}

async function connectRaw(ws, userId) {
  ws.send(msgpack.encode({ type: 0, nsp: '/messages', data: { userId } }));
  const reply = msgpack.decode(await ws.next((f) => Buffer.isBuffer(f)));
  assert.equal(reply.type, 0, `CONNECT reply: ${JSON.stringify(reply)}`);
  assert.equal(reply.nsp, '/messages');
  assert.equal(typeof reply.data.sid, 'string');
}

let deep = 1;
for (let i = 0; i < 40; i++) deep = [deep];

const BAD = [
  ['a type that is not a number', 'msgpack_bad_packet', () => msgpack.encode({ type: '2', nsp: '/messages', data: ['test:echo', 1] })],
  ['an EVENT whose data is not an array', 'msgpack_bad_packet', () => msgpack.encode({ type: 2, nsp: '/messages', data: 'test:echo' })],
  ['a namespace that is not a string', 'msgpack_bad_packet', () => msgpack.encode({ type: 2, nsp: 7, data: ['test:echo'] })],
  ['a packet that is an array, not a map', 'msgpack_bad_packet', () => msgpack.encode([2, '/messages', ['test:echo']])],
  ['an unknown packet type (7)', 'msgpack_bad_packet', () => msgpack.encode({ type: 7, nsp: '/messages', data: ['test:echo'] })],
  ['a text parser BINARY_EVENT type (5)', 'msgpack_bad_packet', () => msgpack.encode({ type: 5, nsp: '/messages', data: ['test:echo'] })],
  ['data nested 40 deep, past the JSON depth limit', 'msgpack_depth', () => msgpack.encode({ type: 2, nsp: '/messages', data: ['test:echo', deep] })],
  ['a truncated packet', 'msgpack_malformed', () => {
    const b = msgpack.encode({ type: 2, nsp: '/messages', data: ['test:echo', 'a longer string'] });
    return b.subarray(0, b.length - 4);
  }],
  ['bytes after the packet', 'msgpack_malformed', () => Buffer.concat([msgpack.encode({ type: 2, nsp: '/messages', data: ['x'] }), Buffer.from([0xc0])])],
  ['an array announcing 2^32 - 1 elements in 5 bytes', 'msgpack_malformed', () => Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])],
  ['65 binaries, over the attachment limit', 'msgpack_size', () => msgpack.encode({ type: 2, nsp: '/messages', data: ['test:echo', Array.from({ length: 65 }, () => Buffer.from([1]))] })],
];

for (const [what, kind, bytes] of BAD) {
  test(`msgpack bad input: ${what} closes that connection (1002), counted as ${kind}, logged; a bystander goes on`, async () => {
    const bystander = mp(`bystander-${kind}`);
    await h.connected(bystander);
    const series = `parley_protocol_errors_total{kind="${kind}"}`;
    const before = (await h.metric(srv, series)) || 0;
    const logged = srv.logs().length;
    const ws = await rawSession();
    await connectRaw(ws, `bad-${kind}`);
    ws.send(bytes());
    const closed = await ws.closed;
    assert.equal(closed.code, 1002, `close: ${JSON.stringify(closed)}`);
    assert.equal(await h.metric(srv, series), before + 1);
    assert.match(srv.logs().slice(logged), /a msgpack packet refused/);
    assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'still here'), 'still here');
    bystander.close();
  });
}

test('msgpack bad input: a text packet on a msgpack session closes it, counted; a bystander goes on', async () => {
  const bystander = mp('bystander-text');
  await h.connected(bystander);
  const series = 'parley_protocol_errors_total{kind="msgpack_text_packet"}';
  const before = (await h.metric(srv, series)) || 0;
  const ws = await rawSession();
  await connectRaw(ws, 'text-on-msgpack');
  ws.send('42/messages,["test:echo","x"]');
  const closed = await ws.closed;
  assert.equal(closed.code, 1002);
  assert.equal(await h.metric(srv, series), before + 1);
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 1), 1);
  bystander.close();
});

test('a JSON session still takes a stray binary frame as an unexpected attachment, not as msgpack', async () => {
  const series = 'parley_protocol_errors_total{kind="unexpected_binary"}';
  const before = (await h.metric(srv, series)) || 0;
  const ws = await rawSession();
  ws.send('40/messages,{"userId":"json-stray"}');
  await ws.next((f) => typeof f === 'string' && f.startsWith('40/messages,'));
  ws.send(msgpack.encode({ type: 2, nsp: '/messages', data: ['test:echo', 1] }));
  assert.equal((await ws.closed).code, 1002);
  assert.equal(await h.metric(srv, series), before + 1);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
