// deflate.test.js - permessage-deflate (RFC 7692) with PARLEY_WS_COMPRESSION=1:
// agreed with no context takeover either way when a client offers it, off
// by default; messages of 1 KB and more go out compressed (RSV1, the
// deflate tail left off), compressed messages from the client are inflated,
// with ws's own client and socket.io-client (which offers it in Node); a
// message that does not inflate is closed 1007, one that inflates past
// PARLEY_MAX_PAYLOAD 1009, both counted, and a bystander goes on.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const zlib = require('node:zlib');
const WebSocket = require('ws');
const { startParley, metric, sioClient, connected, cleanup } = require('./harness');

const ENGINE = '/socket.io/?EIO=4&transport=websocket';

// A client frame, masked; `rsv1` marks it compressed.
function frame(opcode, payload, rsv1 = false) {
  const len = payload.length;
  const head = [0x80 | (rsv1 ? 0x40 : 0) | opcode];
  if (len < 126) head.push(0x80 | len);
  else if (len < 65536) head.push(0x80 | 126, len >> 8, len & 255);
  else head.push(0x80 | 127, 0, 0, 0, 0, (len >>> 24) & 255, (len >>> 16) & 255, (len >>> 8) & 255, len & 255);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

// What a client compresses: the message deflated, its 00 00 ff ff left off.
function deflated(text) {
  const z = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return z.subarray(0, z.length - 4);
}

// A raw WebSocket that offers `extensions` and keeps every server frame
// with its RSV1 bit.
async function rawOpen(port, extensions) {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const state = { head: null, frames: [], buf: Buffer.alloc(0), closed: false, waiters: [] };
  const wake = () => { for (const w of state.waiters.splice(0)) w(); };
  sock.on('data', (d) => {
    state.buf = Buffer.concat([state.buf, d]);
    if (!state.head) {
      const end = state.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      state.head = state.buf.subarray(0, end).toString('latin1');
      state.buf = state.buf.subarray(end + 4);
    }
    for (;;) {
      if (state.buf.length < 2) break;
      let len = state.buf[1] & 0x7f, off = 2;
      if (len === 126) { if (state.buf.length < 4) break; len = state.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (state.buf.length < 10) break; len = Number(state.buf.readBigUInt64BE(2)); off = 10; }
      if (state.buf.length < off + len) break;
      state.frames.push({ rsv1: !!(state.buf[0] & 0x40), opcode: state.buf[0] & 15, data: Buffer.from(state.buf.subarray(off, off + len)) });
      state.buf = state.buf.subarray(off + len);
    }
    wake();
  });
  sock.on('close', () => { state.closed = true; wake(); });
  sock.on('error', () => {});
  sock.write([`GET ${ENGINE} HTTP/1.1`, 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
    ...(extensions ? [`Sec-WebSocket-Extensions: ${extensions}`] : []), '', ''].join('\r\n'));
  const next = async (pred, what) => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const i = state.frames.findIndex(pred);
      if (i >= 0) return state.frames.splice(i, 1)[0];
      if (state.closed) throw new Error(`closed while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`no ${what}`);
      await new Promise((r) => { state.waiters.push(r); setTimeout(r, 100); });
    }
  };
  await next((f) => f.opcode === 1, 'the open packet');
  return { sock, state, next, write: (b) => sock.write(b), end: () => sock.destroy() };
}

// The text of a server frame, inflated if it came compressed.
function text(f) {
  return (f.rsv1 ? zlib.inflateRawSync(Buffer.concat([f.data, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : f.data).toString();
}

describe('permessage-deflate with PARLEY_WS_COMPRESSION=1', () => {
  let srv;
  before(async () => { srv = await startParley({ env: { PARLEY_WS_COMPRESSION: '1' } }); });
  after(async () => { await srv.stop(); });

  test('agreed with no context takeover either way; 1 KB and more goes out compressed, less as it is; a compressed message is read', async () => {
    const w = await rawOpen(srv.port, 'permessage-deflate; client_max_window_bits');
    assert.match(w.state.head, /\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover(\r\n|$)/i);
    const pad = 'x'.repeat(4000);
    w.write(frame(1, deflated(`40/messages,{"userId":"deflate","pad":"${pad}"}`), true));
    const connect = await w.next((f) => /^40\/messages,/.test(text(f)), 'the CONNECT answer');
    assert.equal(connect.rsv1, false, 'a short message went out compressed');
    const big = 'y'.repeat(5000);
    w.write(frame(1, deflated(`42/messages,7["test:echo","${big}"]`), true));
    const ack = await w.next((f) => /^43\/messages,7/.test(text(f)), 'the ack');
    assert.equal(ack.rsv1, true, 'a 5 KB message went out uncompressed');
    assert.ok(ack.data.length < 200, `5 KB of "y" compressed to ${ack.data.length} bytes`);
    assert.equal(text(ack), `43/messages,7["${big}"]`);
    // Each message on its own: the same message twice compresses the same.
    w.write(frame(1, deflated(`42/messages,7["test:echo","${big}"]`), true));
    const again = await w.next((f) => /^43\/messages,7/.test(text(f)), 'the second ack');
    assert.deepEqual(again.data, ack.data);
    w.end();
  });

  test('offers parley cannot take are declined, the WebSocket opens without it: a smaller server window, an unknown parameter', async () => {
    for (const offer of ['permessage-deflate; server_max_window_bits=10', 'permessage-deflate; foo', 'x-webkit-deflate-frame']) {
      const w = await rawOpen(srv.port, offer);
      assert.doesNotMatch(w.state.head, /sec-websocket-extensions/i, offer);
      w.end();
    }
    const w = await rawOpen(srv.port, 'permessage-deflate; server_max_window_bits=10, permessage-deflate');
    assert.match(w.state.head, /sec-websocket-extensions: permessage-deflate;/i, 'the second offer of a list');
    w.end();
  });

  test('ws with perMessageDeflate (threshold 0: it compresses every message) talks to parley both ways', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}${ENGINE}`, { perMessageDeflate: { threshold: 0 } });
    const frames = [];
    const waiters = [];
    ws.on('message', (d) => { frames.push(String(d)); for (const w of waiters.splice(0)) w(); });
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    assert.match(ws.extensions, /permessage-deflate/);
    const want = async (re) => {
      for (;;) {
        const i = frames.findIndex((f) => re.test(f));
        if (i >= 0) return frames.splice(i, 1)[0];
        await new Promise((r) => { waiters.push(r); setTimeout(r, 100); });
      }
    };
    ws.send('40/messages,{"userId":"ws-deflate"}');
    await want(/^40\/messages,\{"sid"/);
    for (const n of [10, 2000, 300000]) {
      const body = JSON.stringify('z'.repeat(n));
      ws.send(`42/messages,${n}["test:echo",${body}]`);
      assert.equal(await want(new RegExp(`^43/messages,${n}\\[`)), `43/messages,${n}[${body}]`);
    }
    ws.close();
  });

  test('socket.io-client (it offers permessage-deflate in Node) over WebSocket: a 200 KB ack comes back whole', async () => {
    const s = sioClient(srv, '/messages', { transports: ['websocket'], query: { userId: 'sio-deflate' } });
    await connected(s);
    const payload = { text: 'hello '.repeat(40000), n: 42 };
    assert.deepStrictEqual(await s.timeout(5000).emitWithAck('test:echo', payload), payload);
    s.close();
  });

  test('a broadcast is compressed once for all its recipients: messages of one burst, large and small, reach every socket whole and in order, with and without deflate', async () => {
    const sender = sioClient(srv, '/messages', { transports: ['websocket'], query: { userId: 'dz-sender' } });
    // socket.io-client in Node offers permessage-deflate; the last one is
    // told not to.
    const receivers = [0, 1, 2, 3].map((i) => sioClient(srv, '/messages',
      { transports: ['websocket'], query: { userId: `dz-${i}` }, perMessageDeflate: i < 3 }));
    await Promise.all([sender, ...receivers].map((c) => connected(c)));
    for (const r of receivers) await r.timeout(5000).emitWithAck('test:join', { room: 'dz' });
    const got = receivers.map(() => []);
    receivers.forEach((r, i) => r.on('test:broadcast-args', (m) => got[i].push(m)));
    // Distinct texts, most of them past the 1 KB threshold, one past the
    // size kept once compressed (64 KB), broadcast by one handler call so
    // that they leave in one flush: 60 of them, more than the 16 frames
    // kept compressed, so that frames meet in one slot.
    const sent = [];
    for (let n = 0; n < 60; n++) {
      const size = n === 20 ? 100000 : 500 + n * 37;
      sent.push({ n, text: `${n}:`.padEnd(size, String.fromCharCode(97 + (n % 26))) + n });
    }
    assert.equal(await sender.timeout(10000).emitWithAck('test:broadcast-each', 'dz', sent), sent.length);
    for (let i = 0; i < receivers.length; i++) {
      while (got[i].length < sent.length) await new Promise((r) => setTimeout(r, 20));
      assert.deepStrictEqual(got[i], sent, `receiver ${i}`);
    }
    [sender, ...receivers].forEach((c) => c.close());
  });

  test('bad compressed input: not deflate data is closed 1007, a message inflating past PARLEY_MAX_PAYLOAD 1009; both counted, a bystander goes on', async () => {
    const bystander = await rawOpen(srv.port, 'permessage-deflate');
    const bad = await rawOpen(srv.port, 'permessage-deflate');
    const before = (await metric(srv, 'parley_protocol_errors_total{kind="bad_deflate"}')) || 0;
    bad.write(frame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), true));
    const c1 = await bad.next((f) => f.opcode === 8, 'the close frame');
    assert.equal(c1.data.readUInt16BE(0), 1007);
    assert.equal(await metric(srv, 'parley_protocol_errors_total{kind="bad_deflate"}'), before + 1);

    const bomb = await rawOpen(srv.port, 'permessage-deflate');
    const limits = (await metric(srv, 'parley_limits_total{limit="max_payload"}')) || 0;
    // 20 MB of zeros deflate to about 20 KB: far under the limit on the wire.
    const z = deflated('0'.repeat(20 << 20));
    assert.ok(z.length < 1000000);
    bomb.write(frame(1, z, true));
    const c2 = await bomb.next((f) => f.opcode === 8, 'the close frame');
    assert.equal(c2.data.readUInt16BE(0), 1009);
    assert.match(c2.data.subarray(2).toString(), /PARLEY_MAX_PAYLOAD/);
    assert.equal(await metric(srv, 'parley_limits_total{limit="max_payload"}'), limits + 1);

    bystander.write(frame(1, deflated('40/messages,{"userId":"bystander"}'), true));
    await bystander.next((f) => /^40\/messages,\{"sid"/.test(text(f)), 'the bystander\'s CONNECT answer')
      .catch((e) => { throw new Error(`${e.message}\n${srv.logs()}`); });
    bystander.end();
    bad.end();
    bomb.end();
  });
});

describe('permessage-deflate off (the default)', () => {
  let srv;
  before(async () => { srv = await startParley(); });
  after(async () => { await srv.stop(); });

  test('an offer is not taken, and a frame with RSV1 is a protocol error (1002)', async () => {
    const w = await rawOpen(srv.port, 'permessage-deflate; client_max_window_bits');
    assert.doesNotMatch(w.state.head, /sec-websocket-extensions/i);
    w.write(frame(1, deflated('40/messages,{"userId":"x"}'), true));
    const c = await w.next((f) => f.opcode === 8, 'the close frame');
    assert.equal(c.data.readUInt16BE(0), 1002);
    w.end();
  });
});

after(cleanup);
