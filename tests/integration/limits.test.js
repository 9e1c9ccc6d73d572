// limits.test.js - every limit is a setting, trips with a log line and a
// parley_limits_total count, and harms nobody else: sockets per user, rooms
// per socket, the handshake deadline (Engine.IO and half-sent HTTP), the
// largest message (WebSocket, plain WebSocket, polling, HTTP API),
// connections per address, the outbound buffer of a client that stops
// reading (memory stays bounded), and what unfinished binary events hold
// (per connection, per server, and how long they wait).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const h = require('./harness');

async function metric(srv, name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

const limitCount = (srv, which) => metric(srv, `parley_limits_total{limit="${which}"}`);

// RSS says nothing under ASan, which keeps freed memory in quarantine.
const sanitized = /sanitizer=/.test(require('node:child_process')
  .execFileSync(h.BINARY, ['--version'], { encoding: 'utf8' }));

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function connectAs(srv, userId) {
  const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] });
  return new Promise((resolve) => {
    s.on('connect', () => resolve({ s }));
    s.on('connect_error', (e) => resolve({ s, error: e }));
    s.connect();
  });
}

test('PARLEY_MAX_USER_SOCKETS=3: a user\'s 4th socket is refused with 429; other users are not', async () => {
  const srv = await h.startParley({ env: { PARLEY_MAX_USER_SOCKETS: '3' } });
  const open = [];
  try {
    for (let i = 0; i < 3; i++) {
      const r = await connectAs(srv, 'many');
      assert.ok(!r.error);
      open.push(r.s);
    }
    const fourth = await connectAs(srv, 'many');
    open.push(fourth.s);
    assert.equal(fourth.error.data.statusCode, 429);
    assert.match(fourth.error.message, /too many connections/);
    const other = await connectAs(srv, 'someone-else');
    open.push(other.s);
    assert.ok(!other.error);
    assert.equal(await limitCount(srv, 'max_user_sockets'), 1);
    assert.match(srv.logs(), /user many has 3 sockets already \(PARLEY_MAX_USER_SOCKETS\)/);
    // One leaves: there is room again once parley has seen it go.
    const before = await h.metric(srv, 'parley_connections{transport="websocket"}');
    open[0].close();
    await h.waitFor(() => h.metric(srv, 'parley_connections{transport="websocket"}'), (n) => n === before - 1, 'the close seen');
    const again = await connectAs(srv, 'many');
    open.push(again.s);
    assert.ok(!again.error, again.error && again.error.message);
  } finally {
    open.forEach((s) => s.close());
    await srv.stop();
  }
});

test('PARLEY_MAX_ROOMS=5: a socket in 5 rooms (its user room counts) cannot join a 6th (429) until it leaves one', async () => {
  const srv = await h.startParley({ env: { PARLEY_MAX_ROOMS: '5' } });
  const { s } = await connectAs(srv, 'roomy');
  try {
    for (let i = 0; i < 4; i++) {
      assert.equal((await s.timeout(3000).emitWithAck('conversation:join', { conversationId: `r${i}` })).success, true);
    }
    const refused = await s.timeout(3000).emitWithAck('conversation:join', { conversationId: 'r4' });
    assert.equal(refused.statusCode, 429);
    // Joining a room it is in already is no new room.
    assert.equal((await s.timeout(3000).emitWithAck('conversation:join', { conversationId: 'r0' })).success, true);
    await s.timeout(3000).emitWithAck('conversation:leave', { conversationId: 'r0' });
    assert.equal((await s.timeout(3000).emitWithAck('conversation:join', { conversationId: 'r4' })).success, true);
    assert.equal(await limitCount(srv, 'max_rooms'), 1);
    assert.match(srv.logs(), /\(roomy\): in 5 rooms already \(PARLEY_MAX_ROOMS\): join refused/);
  } finally {
    s.close();
    await srv.stop();
  }
});

test('PARLEY_CONNECT_TIMEOUT=300: an Engine.IO session that connects no namespace is closed, and so is a half-sent HTTP request; each counted and logged, a bystander untouched', async () => {
  const srv = await h.startParley({ env: { PARLEY_CONNECT_TIMEOUT: '300' } });
  try {
    const ws = h.rawEngineWs(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
    await ws.opened;
    await ws.closed;
    assert.equal(await limitCount(srv, 'connect_timeout'), 1);
    assert.match(srv.logs(), /no namespace connected within PARLEY_CONNECT_TIMEOUT/);

    // A client that connects in time is kept: the bystander of what follows.
    // A session opened after it and left without a namespace is closed by
    // the timeout: by then the prompt one would have been too.
    const { s } = await connectAs(srv, 'prompt');
    const late = h.rawEngineWs(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
    await late.opened;
    await late.closed;
    assert.equal(await limitCount(srv, 'connect_timeout'), 2);
    assert.equal(s.connected, true);
    let bystanderLeft = null;
    s.on('disconnect', (why) => { bystanderLeft = why; });

    // Half an HTTP request: dropped after the (second-granular) deadline,
    // counted and logged; the bystander notices nothing.
    await new Promise((resolve) => {
      const sock = net.connect(srv.port, '127.0.0.1', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
      sock.on('close', resolve);
      sock.on('error', resolve);
    });
    await h.waitFor(() => limitCount(srv, 'connect_timeout'), (n) => n >= 3, 'the dropped request counted');
    assert.equal(await limitCount(srv, 'connect_timeout'), 3);
    assert.match(srv.logs(), /127\.0\.0\.1: no complete HTTP request within PARLEY_CONNECT_TIMEOUT \(\d+ ms\): connection dropped/);
    assert.equal(bystanderLeft, null, 'the bystander was disconnected');
    assert.deepEqual(await s.timeout(3000).emitWithAck('test:echo', { still: 'here' }), { still: 'here' });
    // A request sent whole, even slowly, is no timeout.
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    assert.equal(await limitCount(srv, 'connect_timeout'), 3);
    s.close();
  } finally {
    await srv.stop();
  }
});

test('PARLEY_MAX_PAYLOAD=4096: a larger message is refused on every path (WebSocket 1009, plain WebSocket 1009, polling 413, HTTP API 413), each counted and logged; a bystander is untouched', async () => {
  const KEY = 'limits-api-key';
  const srv = await h.startParley({ env: { PARLEY_MAX_PAYLOAD: '4096', PARLEY_API_KEY: KEY } });
  const big = 'x'.repeat(5000);
  const { s: bystander } = await connectAs(srv, 'bystander');
  let bystanderLeft = null;
  bystander.on('disconnect', (why) => { bystanderLeft = why; });
  try {
    // Socket.IO over WebSocket: the connection is closed with 1009.
    const ws = h.rawEngineWs(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
    await ws.opened;
    await ws.next((f) => f[0] === '0');
    ws.send('40/messages,{"userId":"big-ws"}');
    await ws.next((f) => f.startsWith('40/messages,'));
    ws.send(`42/messages,["test:echo","${big}"]`);
    assert.equal((await ws.closed).code, 1009);
    assert.equal(await limitCount(srv, 'max_payload'), 1);
    assert.match(srv.logs(), /\(::ffff:127\.0\.0\.1\): a WebSocket message over 4096 bytes \(PARLEY_MAX_PAYLOAD\): closing with 1009/);

    // The plain WebSocket endpoint: the same.
    const plain = h.plainClient(srv, 'userId=big-plain');
    await plain.opened;
    plain.sendJson({ event: 'test:echo', data: big });
    assert.equal((await plain.closed).code, 1009);
    assert.equal(await limitCount(srv, 'max_payload'), 2);

    // Polling: the POST is answered 413 and its session ends.
    const { sid } = await h.pollHandshake(srv);
    const post = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: `4${big}` });
    assert.equal(post.status, 413);
    assert.equal(await limitCount(srv, 'max_payload'), 3);
    assert.match(srv.logs(), new RegExp(`${sid} \\(::ffff:127\\.0\\.0\\.1\\): a polling POST body over 4096 bytes \\(PARLEY_MAX_PAYLOAD\\): 413, session closed`));

    // The HTTP API: 413, and the request is logged with its route.
    const api = await fetch(`${srv.url}/api/conversations/c1/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ senderId: 'a', type: 'text', content: big }),
    });
    assert.equal(api.status, 413);
    assert.equal((await api.json()).statusCode, 413);
    assert.equal(await limitCount(srv, 'max_payload'), 4);
    assert.match(srv.logs(), /HTTP API POST \/api\/conversations\/c1\/messages from ::ffff:127\.0\.0\.1: a body over 4096 bytes \(PARLEY_MAX_PAYLOAD\): 413/);

    // Within the limit, all is well; the bystander saw nothing.
    assert.equal(bystanderLeft, null);
    const fits = 'y'.repeat(3000);
    assert.equal(await bystander.timeout(3000).emitWithAck('test:echo', fits), fits);
  } finally {
    bystander.close();
    await srv.stop();
  }
});

test('PARLEY_MAX_CONNS_PER_IP=5: the 6th connection from 127.0.0.1 is refused at accept; another address still gets in', async () => {
  const srv = await h.startParley({ env: { PARLEY_MAX_CONNS_PER_IP: '5' } });
  const socks = [];
  try {
    // parley accepts in the order the kernel queued the connections: the
    // sixth is taken after these five, whenever that is.
    for (let i = 0; i < 5; i++) {
      const sock = net.connect(srv.port, '127.0.0.1');
      await new Promise((r) => sock.on('connect', r));
      socks.push(sock);
    }
    const sixth = net.connect(srv.port, '127.0.0.1');
    const closed = await new Promise((resolve) => {
      sixth.on('close', () => resolve(true));
      sixth.on('error', () => resolve(true));
      setTimeout(() => resolve(false), 2000);
    });
    assert.equal(closed, true, 'the 6th connection was kept');
    // From 127.0.0.2 (a source address of its own on loopback).
    const reply = await new Promise((resolve) => {
      let out = '';
      const sock = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.2' },
        () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      sock.on('data', (d) => { out += d; });
      sock.on('close', () => resolve(out));
      sock.on('error', () => resolve(out));
    });
    assert.match(reply, /^HTTP\/1\.1 200/);
    assert.ok(await limitCount(srv, 'max_conns_per_ip') >= 1);
    assert.match(srv.logs(), /127\.0\.0\.1 has 5 connections \(PARLEY_MAX_CONNS_PER_IP\): connection refused/);
    // When one goes, the address may connect again.
    socks.shift().destroy();
    await h.waitFor(() => fetch(`${srv.url}/healthz`).then((x) => x.status, () => 0), (st) => st === 200,
      'a connection once one of the five went');
  } finally {
    socks.forEach((s) => s.destroy());
    await srv.stop();
  }
});

// The outbound-buffer case: FIRE_COUNT messages of FIRE_BYTES (80 MB) go to
// a room with a client that stopped reading, while the server may grow by
// GROWTH_BOUND_KB. Cut off at the cap, it grows by about 1 MB here; keeping
// everything for that client (PARLEY_MAX_BUFFER large) grows it by ~75 MB
// and fails. Under ASan, RSS says nothing and the bound is skipped.
const MAX_BUFFER = 256 * 1024;
const FIRE_COUNT = 2000;
const FIRE_BYTES = 40000;
const GROWTH_BOUND_KB = 16 * 1024;

test('PARLEY_MAX_BUFFER=256 KiB: a client that stops reading while 80 MB come is cut off, logged and counted; memory grows by far less than what was sent; the others get everything', { timeout: 120000 }, async () => {
  assert.ok(FIRE_COUNT * FIRE_BYTES > 4 * GROWTH_BOUND_KB * 1024, 'the test must send several times what it allows the server to grow by');
  const srv = await h.startParley({ env: { PARLEY_MAX_BUFFER: String(MAX_BUFFER) } });
  try {
    const reader = (await connectAs(srv, 'reader')).s;
    await reader.timeout(3000).emitWithAck('test:join', { room: 'firehose' });
    const stalled = h.plainClient(srv, 'userId=stalled');
    await stalled.opened;
    stalled.sendJson({ event: 'test:join', data: { room: 'firehose' }, ack: 1 });
    await stalled.next((f) => f.ack === 1);
    stalled._socket.pause();
    const sender = (await connectAs(srv, 'sender')).s;
    let got = 0;
    reader.on('fire', () => { got++; });
    const payload = 'x'.repeat(FIRE_BYTES);
    // A first round, so that the baseline has the buffers a busy server keeps.
    await sender.timeout(10000).emitWithAck('test:broadcast', { rooms: ['reader-only'], event: 'warm', data: { payload } });
    const before = rssKb(srv.proc.pid);
    let peak = before;
    // Ten at a time: the reader keeps up, so only the stalled client lags.
    for (let i = 0; i < FIRE_COUNT; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) =>
        sender.timeout(10000).emitWithAck('test:broadcast', { rooms: ['firehose'], event: 'fire', data: { i: i + k, payload } })));
      if (i % 200 === 0) peak = Math.max(peak, rssKb(srv.proc.pid));
    }
    peak = Math.max(peak, rssKb(srv.proc.pid));
    const deadline = Date.now() + 30000;
    while (got < FIRE_COUNT && Date.now() < deadline) await h.sleep(50);
    assert.equal(got, FIRE_COUNT, 'the reading client missed messages');
    const grew = peak - before;
    if (!sanitized) {
      assert.ok(grew < GROWTH_BOUND_KB,
        `parley grew by ${grew} kB (bound ${GROWTH_BOUND_KB} kB) for ${FIRE_COUNT * FIRE_BYTES / 1e6} MB sent to a client that did not read`);
    }
    assert.equal(await limitCount(srv, 'max_buffer'), 1);
    assert.match(srv.logs(), /\d+ bytes wait unread \(PARLEY_MAX_BUFFER\): closing the slow consumer/);
    stalled._socket.resume();
    // What was queued for it is dropped and a close frame takes its place,
    // behind what the kernel already holds.
    assert.deepEqual(await stalled.closed, { code: 1000, reason: 'slow consumer' });
    [reader, sender].forEach((s) => s.close());
  } finally {
    await srv.stop();
  }
});

// ---- binary events whose attachments never all come ----

// A raw Engine.IO websocket with /messages connected as `userId`.
async function rawSioWs(srv, userId) {
  const ws = h.rawEngineWs(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
  await ws.opened;
  await ws.next((f) => typeof f === 'string' && f[0] === '0');
  ws.send(`40/messages,${JSON.stringify({ userId })}`);
  await ws.next((f) => typeof f === 'string' && f.startsWith('40/messages,'));
  return ws;
}

// A BINARY_EVENT announcing `announced` attachments (ack id `id`).
const binaryEvent = (announced, id = '') =>
  `45${announced}-/messages,${id}["test:echo",{"_placeholder":true,"num":0}]`;

function closedWithin(ws, ms, what) {
  let t;
  return Promise.race([
    ws.closed.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: not closed within ${ms} ms`)), ms); }),
  ]);
}

// Four connections each announce 64 attachments and send 40 of 500 KB (80 MB
// in all): each is closed (1009) once it holds more than the 2 MB cap, and
// what it held is freed. Without the cap parley kept all 80 MB for as long as
// the connections lived.
const ATTACHMENT = 500000;
const OFFENDERS = 4;
const SENT_EACH = 40;

test('PARLEY_MAX_BINARY_PENDING=2 MB: a binary event whose attachments pile up past the cap is dropped and its connection closed (1009), logged and counted; memory is released; a bystander is untouched', { timeout: 120000 }, async () => {
  const srv = await h.startParley({ env: { PARLEY_MAX_PAYLOAD: '600000', PARLEY_MAX_BINARY_PENDING: '2000000' } });
  const open = [];
  try {
    const bystander = (await connectAs(srv, 'bystander')).s;
    open.push(bystander);
    assert.equal(await bystander.timeout(3000).emitWithAck('test:echo', 'warm'), 'warm');
    const before = rssKb(srv.proc.pid);
    const chunk = Buffer.alloc(ATTACHMENT, 7);
    const offenders = [];
    for (let i = 0; i < OFFENDERS; i++) {
      const ws = await rawSioWs(srv, `piler-${i}`);
      open.push(ws);
      ws.send(binaryEvent(64));
      for (let k = 0; k < SENT_EACH; k++) ws.send(chunk);
      offenders.push(ws);
    }
    for (const ws of offenders) {
      const c = await closedWithin(ws, 10000, 'the connection holding attachments past the cap');
      assert.equal(c.code, 1009, `close code ${c.code} ${c.reason}`);
    }
    assert.equal(await limitCount(srv, 'max_binary_pending'), OFFENDERS);
    assert.match(srv.logs(), /a binary event holding \d+ bytes with 3 of 64 attachments: over PARLEY_MAX_BINARY_PENDING: closing/);
    const grew = rssKb(srv.proc.pid) - before;
    if (!sanitized) {
      assert.ok(grew < 16 * 1024, `parley grew by ${grew} kB after ${OFFENDERS * SENT_EACH * ATTACHMENT / 1e6} MB of attachments`);
    }
    assert.equal(await bystander.timeout(3000).emitWithAck('test:echo', 'still here'), 'still here');
    // A binary event within the cap still goes through.
    const ws = await rawSioWs(srv, 'uploader');
    open.push(ws);
    ws.send(binaryEvent(1, 5));
    ws.send(chunk);
    assert.match(await ws.next((f) => typeof f === 'string' && f.startsWith('461-/messages,5')), /_placeholder/);
    assert.equal((await ws.next((f) => Buffer.isBuffer(f))).length, ATTACHMENT);
  } finally {
    for (const s of open) (s.terminate ? s.terminate() : s.close());
    await srv.stop();
  }
});

test('PARLEY_BINARY_TIMEOUT=300: a binary event whose next attachment does not come is dropped and its connection closed, logged and counted', async () => {
  const srv = await h.startParley({ env: { PARLEY_BINARY_TIMEOUT: '300' } });
  const open = [];
  try {
    const bystander = (await connectAs(srv, 'bystander')).s;
    open.push(bystander);
    const ws = await rawSioWs(srv, 'stuck');
    open.push(ws);
    ws.send(binaryEvent(2));
    ws.send(Buffer.alloc(1000, 1));
    const c = await closedWithin(ws, 10000, 'the incomplete binary event');
    assert.equal(c.code, 1002, `close code ${c.code} ${c.reason}`);
    assert.equal(await limitCount(srv, 'binary_timeout'), 1);
    assert.match(srv.logs(), /a binary event holding \d+ bytes with 1 of 2 attachments: no attachment within PARLEY_BINARY_TIMEOUT: closing/);
    assert.equal(await bystander.timeout(3000).emitWithAck('test:echo', 'fine'), 'fine');
  } finally {
    for (const s of open) (s.terminate ? s.terminate() : s.close());
    await srv.stop();
  }
});

// first holds 1.5 MB of a 4-attachment event; second's 2nd attachment would
// take the server's total past 2.5 MB.
test('PARLEY_MAX_BINARY_PENDING_TOTAL: the connection whose attachment would take the server past it is closed (1009); the one holding less finishes its event', async () => {
  const srv = await h.startParley({ env: {
    PARLEY_MAX_PAYLOAD: '600000', PARLEY_MAX_BINARY_PENDING: '2100000', PARLEY_MAX_BINARY_PENDING_TOTAL: '2500000',
  } });
  const open = [];
  try {
    const chunk = Buffer.alloc(ATTACHMENT, 3);
    const first = await rawSioWs(srv, 'first');
    open.push(first);
    first.send(binaryEvent(4, 9));
    for (let k = 0; k < 3; k++) first.send(chunk);
    // The server holds first's 1.5 MB once it answers a ping sent after them.
    await new Promise((resolve) => { first.once('pong', resolve); first.ping(); });
    const second = await rawSioWs(srv, 'second');
    open.push(second);
    second.send(binaryEvent(4));
    for (let k = 0; k < 3; k++) second.send(chunk);
    const c = await closedWithin(second, 10000, 'the connection past the server total');
    assert.equal(c.code, 1009);
    assert.equal(await limitCount(srv, 'max_binary_pending_total'), 1);
    assert.match(srv.logs(), /the server's binary events over PARLEY_MAX_BINARY_PENDING_TOTAL: closing/);
    first.send(chunk);
    assert.match(await first.next((f) => typeof f === 'string' && f.startsWith('461-/messages,9')), /_placeholder/);
  } finally {
    for (const s of open) s.terminate();
    await srv.stop();
  }
});
// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
