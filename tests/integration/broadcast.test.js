// broadcast.test.js - what a broadcast costs and who it waits for: one
// encoding per wire format whatever the audience, and a socket that stops
// reading is cut off without holding up the others.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const h = require('./harness');

let srv;
test.before(async () => { srv = await h.startParley(); });
test.after(async () => { assert.strictEqual((await srv.stop()).code, 0); });

async function metric(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function sioIn(room, userId) {
  const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] });
  await h.connected(s);
  await s.emitWithAck('test:join', { room });
  return s;
}

async function plainIn(room, userId) {
  const p = h.plainClient(srv, `userId=${userId}`);
  await p.opened;
  p.sendJson({ event: 'test:join', data: { room }, ack: 1 });
  await p.next((f) => f.ack === 1);
  return p;
}

test('a broadcast to 40 Socket.IO and 10 plain sockets is encoded once per wire format', async () => {
  const sio = await Promise.all(Array.from({ length: 40 }, (_, i) => sioIn('room:enc', `enc-s${i}`)));
  const plain = await Promise.all(Array.from({ length: 10 }, (_, i) => plainIn('room:enc', `enc-p${i}`)));
  const before = await metric('parley_event_encodings_total');
  const got = Promise.all([
    ...sio.map((s) => h.once(s, 'enc:hello')),
    ...plain.map((p) => p.next((f) => f.event === 'enc:hello')),
  ]);
  const reached = await sio[0].emitWithAck('test:broadcast', {
    rooms: ['room:enc'], event: 'enc:hello', data: { n: 1 },
  });
  assert.strictEqual(reached, 50);
  const payloads = await got;
  assert.deepStrictEqual(payloads[0], { n: 1 });
  assert.deepStrictEqual(payloads[45], { event: 'enc:hello', data: { n: 1 } });
  const after = await metric('parley_event_encodings_total');
  assert.strictEqual(after - before, 2, 'one Socket.IO encoding and one plain encoding');
  sio.forEach((s) => s.close());
  plain.forEach((p) => p.close());
});

test('a broadcast naming more rooms and exceptions than a short list holds reaches the right sockets', async () => {
  const rooms = Array.from({ length: 10 }, (_, i) => `room:many${i}`);
  const a = await sioIn(rooms[0], 'many-a');
  for (const r of rooms.slice(1)) await a.emitWithAck('test:join', { room: r });
  const b = await sioIn(rooms[9], 'many-b');
  const others = Array.from({ length: 10 }, (_, i) => `room:none${i}`);
  const got = h.once(b, 'many:hello');
  assert.strictEqual(await a.emitWithAck('test:broadcast', {
    rooms, exceptRooms: others, event: 'many:hello', data: { n: 1 },
  }), 2, 'a (in all ten) and b, each once');
  assert.deepStrictEqual(await got, { n: 1 });
  assert.strictEqual(await a.emitWithAck('test:broadcast', {
    rooms, exceptRooms: [...others, rooms[9]], event: 'many:hello', data: { n: 2 },
  }), 0, 'both are in the tenth exception');
  a.close();
  b.close();
});

test('a broadcast skips each socket it is told to skip, one or several', async () => {
  const socks = await Promise.all([0, 1, 2, 3].map((i) => sioIn('room:skip', `skip${i}`)));
  const ids = await Promise.all(socks.map(async (s) => (await s.emitWithAck('test:whoami')).id));
  const reach = (extra) => socks[0].emitWithAck('test:broadcast', {
    rooms: ['room:skip'], event: 'skip:hello', data: {}, ...extra,
  });
  assert.strictEqual(await reach({}), 4);
  assert.strictEqual(await reach({ exceptSelf: true }), 3);
  assert.strictEqual(await reach({ exceptSelf: true, exceptSockets: [ids[1]] }), 2);
  assert.strictEqual(await reach({ exceptSockets: [ids[1], ids[2], ids[3]] }), 1);
  assert.strictEqual(await reach({ exceptSelf: true, exceptSockets: ids.slice(1) }), 0);
  socks.forEach((s) => s.close());
});

test('a payload with no JSON form raises in the script and reaches no one', async () => {
  const s = await sioIn('room:bad', 'unencodable');
  const bad = [];
  s.on('test:bad', (d) => bad.push(d));
  for (const how of ['emit', 'broadcast', 'request']) {
    const r = await s.timeout(3000).emitWithAck('test:unencodable', { how });
    assert.strictEqual(r.raised, true, how);
    assert.match(r.message, /json\.encode: a value of this type has no JSON form/, how);
  }
  // The same socket still gets what follows, and nothing came before it.
  const bounced = h.once(s, 'test:bounced');
  await s.timeout(3000).emitWithAck('test:bounce', { n: 2 });
  assert.deepStrictEqual(await bounced, { n: 2 });
  assert.deepStrictEqual(bad, []);
  s.close();
});

test('a socket that stops reading is disconnected and the others get every message', async () => {
  const readers = await Promise.all([0, 1, 2].map((i) => sioIn('room:slow', `reader${i}`)));
  const stalled = await plainIn('room:slow', 'stalled');
  // Stop reading: the kernel buffers fill (loopback takes several MB), then
  // parley's queue for it grows past its 16 MB cap: 30 MB in all.
  stalled._socket.pause();
  const sender = await sioIn('room:other', 'sender');
  const count = 3000;
  const big = 'x'.repeat(10000);
  const received = readers.map(() => 0);
  readers.forEach((r, i) => r.on('slow:msg', () => { received[i]++; }));
  // The readers are paced: a batch goes once every reader has the last one,
  // so a reader never lags by more than a batch (1 MB) however busy this
  // machine is, while the stalled socket's share piles up past the cap.
  for (let i = 0; i < count; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, k) =>
      sender.emitWithAck('test:broadcast', { rooms: ['room:slow'], event: 'slow:msg', data: { i: i + k, big } })));
    try {
      await h.waitFor(() => received, (r) => r.every((n) => n >= i + 100), `every reader has message ${i + 99}`, 20000);
    } catch (_) {
      break; // the assertion below says who fell behind
    }
  }
  assert.deepStrictEqual(received, [count, count, count], 'every reader got every message');
  assert.strictEqual(await metric('parley_protocol_errors_total{kind="slow_consumer"}'), 1);
  // The stalled socket was closed by the server; resuming shows the close.
  stalled._socket.resume();
  // What was queued for it is dropped and a close frame takes its place,
  // behind what the kernel already holds.
  assert.deepEqual(await stalled.closed, { code: 1000, reason: 'slow consumer' });
  const r = await readers[0].emitWithAck('test:echo', { still: 'alive' });
  assert.deepStrictEqual(r, { still: 'alive' });
  [...readers, sender].forEach((s) => s.close());
});

test('parley.room_users lists each user of a room once', async () => {
  // 20 users: the first 16 are told apart one by one, the rest through a
  // set; u3 and u18 each have a second socket, on the other wire format.
  const users = Array.from({ length: 20 }, (_, i) => `ru-u${i}`);
  const socks = [];
  for (const u of users) socks.push(await sioIn('room:users', u));
  const extra = [await plainIn('room:users', 'ru-u3'), await plainIn('room:users', 'ru-u18')];
  const asker = socks[0];
  assert.deepStrictEqual(await asker.emitWithAck('test:room-users', { room: 'room:users' }), users);
  // A user whose every socket left is gone from it; one with a socket left stays.
  socks[3].close();
  socks[18].close();
  extra[0].close();
  // (A leave moves the room's last member into the gap: order is not kept.)
  const left = users.filter((u) => u !== 'ru-u3').sort();
  let now;
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await h.sleep(20)) {
    now = [...await asker.emitWithAck('test:room-users', { room: 'room:users' })].sort();
    if (now.length === left.length) break;
  }
  assert.deepStrictEqual(now, left);
  assert.deepStrictEqual(await asker.emitWithAck('test:room-users', { room: 'room:nobody' }), []);
  socks.forEach((s) => s.close());
  extra[1].close();
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
