// wire.test.js - parley's own WebSocket framing (core/net/ws.c), spoken by hand
// over a TCP socket: an upgrade that arrives in pieces or with frames behind
// it, messages in fragments with control frames between them, a message
// spread over many TCP writes, the closing handshake, each protocol error
// closing with 1002 (counted) while a bystander goes on, and the upgrade
// refusals (400, 426, 404; an upgrade on a kept-alive HTTP connection).
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { startParley, sleep } = require('./harness');

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = crypto.createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');

function upgradeHead(path, extra = []) {
  return [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13', ...extra, '', ''].join('\r\n');
}

// A client frame: masked unless told otherwise.
function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else if (len < 65536) head.push((mask ? 0x80 : 0) | 126, len >> 8, len & 255);
  else {
    head.push((mask ? 0x80 : 0) | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 255, (len >>> 16) & 255, (len >>> 8) & 255, len & 255);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(data);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

// A TCP connection that reads the HTTP answer, then server frames.
class Wire {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.buf = Buffer.alloc(0);
    this.head = null;
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
    this.sock.on('close', () => { this.closed = true; this.wake(); });
    this.sock.on('error', () => {});
  }
  ready() { return new Promise((r) => this.sock.once('connect', r)); }
  write(b) { this.sock.write(b); }
  parse() {
    if (this.head === null) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      this.head = { status: Number(lines[0].split(' ')[1]), headers };
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      if (this.head.status !== 101 || this.buf.length < 2) break;
      let len = this.buf[1] & 0x7f, off = 2;
      if (len === 126) { if (this.buf.length < 4) break; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) break; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + len) break;
      assert.equal(this.buf[1] & 0x80, 0, 'a server frame must not be masked');
      this.frames.push({ fin: this.buf[0] >> 7, opcode: this.buf[0] & 15, data: Buffer.from(this.buf.subarray(off, off + len)) });
      this.buf = this.buf.subarray(off + len);
    }
    this.wake();
  }
  wake() { for (const w of this.waiters.splice(0)) w(); }
  // The first frame (taken off the list) that `pred` accepts.
  async next(pred = () => true, ms = 3000, what = 'a frame') {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, left); });
    }
  }
  async answer(ms = 3000) {
    const deadline = Date.now() + ms;
    while (this.head === null && !this.closed && Date.now() < deadline)
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 50); });
    return this.head;
  }
  async gone(ms = 3000) {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => { this.waiters.push(r); setTimeout(r, 50); });
    return this.closed;
  }
  text(p) { return (f) => f.opcode === 1 && (typeof p === 'string' ? f.data.toString() === p : p.test(f.data.toString())); }
  end() { this.sock.destroy(); }
}

async function open(srv, path = '/socket.io/?EIO=4&transport=websocket') {
  const w = new Wire(srv.port);
  await w.ready();
  w.write(upgradeHead(path));
  const head = await w.answer();
  assert.equal(head && head.status, 101, `upgrade of ${path}: ${JSON.stringify(head)}`);
  return w;
}

function closeCode(f) { return f.data.length >= 2 ? f.data.readUInt16BE(0) : null; }

async function metric(srv, name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('the WebSocket wire', () => {
  let srv;
  before(async () => { srv = await startParley(); });
  after(async () => { await srv.stop(); });

  test('an upgrade sent a byte at a time gets 101 with the right accept key, then the Engine.IO open packet', async () => {
    const w = new Wire(srv.port);
    await w.ready();
    const head = upgradeHead('/socket.io/?EIO=4&transport=websocket');
    for (const ch of head) { w.write(ch); await sleep(1); }
    const answer = await w.answer();
    assert.equal(answer.status, 101);
    assert.equal(answer.headers['sec-websocket-accept'], ACCEPT);
    const opened = await w.next(w.text(/^0\{/), 3000, 'the open packet');
    assert.match(JSON.parse(opened.data.toString().slice(1)).sid, /^[\w-]{20}$/);
    w.end();
  });

  test('frames sent in the same write as the upgrade request are read after it', async () => {
    const w = new Wire(srv.port);
    await w.ready();
    w.write(Buffer.concat([Buffer.from(upgradeHead('/socket.io/?EIO=4&transport=websocket')),
      frame(1, '40/messages,{"userId":"pipelined"}')]));
    assert.equal((await w.answer()).status, 101);
    await w.next(w.text(/^40\/messages,\{"sid"/), 3000, 'the CONNECT answer');
    w.end();
  });

  test('a message in three fragments with a ping between them: the pong echoes the ping, the message is one CONNECT', async () => {
    const w = await open(srv);
    await w.next(w.text(/^0\{/));
    const msg = '40/messages,{"userId":"fragments"}';
    w.write(frame(1, msg.slice(0, 5), { fin: false }));
    w.write(frame(9, 'are you there'));
    w.write(frame(0, msg.slice(5, 20), { fin: false }));
    w.write(frame(0, msg.slice(20)));
    const pong = await w.next((f) => f.opcode === 10, 3000, 'the pong');
    assert.equal(pong.data.toString(), 'are you there');
    await w.next(w.text(/^40\/messages,\{"sid"/), 3000, 'the CONNECT answer');
    w.end();
  });

  test('a 300 KB message spread over 60 TCP writes is read whole', async () => {
    const w = await open(srv);
    await w.next(w.text(/^0\{/));
    const pad = 'x'.repeat(300 * 1024);
    const bytes = frame(1, `40/messages,{"userId":"big","pad":"${pad}"}`);
    const step = Math.ceil(bytes.length / 60);
    for (let i = 0; i < bytes.length; i += step) { w.write(bytes.subarray(i, i + step)); await sleep(2); }
    await w.next(w.text(/^40\/messages,\{"sid"/), 5000, 'the CONNECT answer');
    w.end();
  });

  test('the closing handshake: a close 1000 is answered with 1000 and the server ends the TCP connection', async () => {
    const w = await open(srv);
    await w.next(w.text(/^0\{/));
    const reason = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye')]);
    w.write(frame(8, reason));
    const close = await w.next((f) => f.opcode === 8, 3000, 'the close answer');
    assert.equal(closeCode(close), 1000);
    assert.ok(await w.gone(), 'the server did not close the TCP connection');
  });

  test('a close frame with a code no peer may send (1005) is answered with 1002', async () => {
    const w = await open(srv);
    await w.next(w.text(/^0\{/));
    w.write(frame(8, Buffer.from([0x03, 0xed])));
    const close = await w.next((f) => f.opcode === 8, 3000, 'the close answer');
    assert.equal(closeCode(close), 1002);
    assert.ok(await w.gone());
  });

  const violations = [
    ['an unmasked frame', frame(1, '3', { mask: false })],
    ['a reserved bit set', frame(1, '3', { rsv: 4 })],
    ['a reserved opcode (3)', frame(3, 'x')],
    ['a continuation with no message begun', frame(0, 'x')],
    ['a ping of 126 bytes', frame(9, Buffer.alloc(126))],
    ['a fragmented ping', frame(9, 'x', { fin: false })],
    ['a new text message inside a fragmented one', Buffer.concat([frame(1, '4', { fin: false }), frame(1, '0')])],
  ];
  for (const [what, bytes] of violations) {
    test(`${what}: closed with 1002 and counted; a bystander's connection answers on`, async () => {
      const bystander = await open(srv);
      await bystander.next(bystander.text(/^0\{/));
      const before = await metric(srv, 'parley_protocol_errors_total{kind="bad_ws_frame"}');
      const w = await open(srv);
      await w.next(w.text(/^0\{/));
      w.write(bytes);
      const close = await w.next((f) => f.opcode === 8, 3000, 'the close frame');
      assert.equal(closeCode(close), 1002, `${what}: ${close.data.subarray(2).toString()}`);
      w.write(frame(8, Buffer.from([0x03, 0xea])));
      assert.ok(await w.gone(), `${what}: the TCP connection stayed open`);
      assert.equal(await metric(srv, 'parley_protocol_errors_total{kind="bad_ws_frame"}'), before + 1);
      bystander.write(frame(1, '40/messages,{"userId":"bystander"}'));
      await bystander.next(bystander.text(/^40\/messages,\{"sid"/), 3000, 'the bystander\'s CONNECT answer');
      bystander.end();
    });
  }

  test('a close frame with a 126-byte payload is answered 1002 and the server ends the TCP connection at once, unanswered', async () => {
    const w = await open(srv);
    await w.next(w.text(/^0\{/));
    const before = await metric(srv, 'parley_protocol_errors_total{kind="bad_ws_frame"}');
    w.write(frame(8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(124, 0x61)])));
    const close = await w.next((f) => f.opcode === 8, 3000, 'the close frame');
    assert.equal(closeCode(close), 1002);
    // The peer broke the protocol: no close answer is waited for (that
    // wait is 3 s for a well-formed close), the connection ends now.
    assert.ok(await w.gone(1500), 'the TCP connection stayed open after a malformed close frame');
    assert.equal(await metric(srv, 'parley_protocol_errors_total{kind="bad_ws_frame"}'), before + 1);
  });

  test('a message over PARLEY_MAX_PAYLOAD (4 MiB against 1 MB) is closed with 1009 and a close frame, every time', async () => {
    const big = Buffer.alloc(4 << 20, 0x61);
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
      ws.on('error', () => {});
      await new Promise((r) => ws.once('message', r)); // the open packet
      const closed = new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: String(reason) })));
      ws.send(big);
      const c = await closed;
      assert.equal(c.code, 1009, `try ${i + 1}: closed with ${c.code} (${c.reason})`);
      assert.match(c.reason, /PARLEY_MAX_PAYLOAD/);
    }
  });

  test('the head of a 4 MiB frame, then its bytes as they come: the 1009 close frame arrives while the peer is still sending', async () => {
    const w = await open(srv);
    await w.next(w.text(/^0\{/));
    let reset = null;
    w.sock.on('error', (e) => { reset = e; });
    const bytes = frame(2, Buffer.alloc(4 << 20, 0x62));
    w.write(bytes.subarray(0, 64 << 10));
    const close = await w.next((f) => f.opcode === 8, 3000, 'the close frame');
    assert.equal(closeCode(close), 1009);
    // What the peer still sends is read and dropped, and never taken for
    // frames; the peer's own close ends it.
    w.write(bytes.subarray(64 << 10));
    w.write(frame(8, Buffer.from([0x03, 0xf1])));
    assert.ok(await w.gone(), 'the TCP connection stayed open');
    // A reset (the server closing with the peer's bytes unread) can
    // destroy the close frame before a client reads it: that was the 1006.
    assert.equal(reset, null, `the connection was reset: ${reset && reset.message}`);
    assert.deepEqual(w.frames.filter((f) => f.opcode === 8), [], 'a second close frame');
  });

  test('upgrade refusals: no key 400, version 8 426 (naming 13), an unknown path 404, EIO=3 400', async () => {
    const cases = [
      ['no Sec-WebSocket-Key', upgradeHead('/socket.io/?EIO=4&transport=websocket').replace(/Sec-WebSocket-Key: .*\r\n/, ''), 400],
      ['version 8', upgradeHead('/socket.io/?EIO=4&transport=websocket').replace('Version: 13', 'Version: 8'), 426],
      ['an unknown path', upgradeHead('/nowhere'), 404],
      ['EIO=3', upgradeHead('/socket.io/?EIO=3&transport=websocket'), 400],
    ];
    for (const [what, head, status] of cases) {
      const w = new Wire(srv.port);
      await w.ready();
      w.write(head);
      const answer = await w.answer();
      assert.equal(answer && answer.status, status, what);
      if (status === 426) assert.equal(answer.headers['sec-websocket-version'], '13');
      assert.ok(await w.gone(), `${what}: the connection stayed open`);
    }
  });

  test('an upgrade on a connection that already served an HTTP request is refused with 400', async () => {
    const w = new Wire(srv.port);
    await w.ready();
    w.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const first = await w.answer();
    assert.equal(first.status, 200);
    w.head = null;
    w.buf = Buffer.alloc(0);
    w.write(upgradeHead('/socket.io/?EIO=4&transport=websocket'));
    const second = await w.answer();
    assert.equal(second && second.status, 400);
    w.end();
  });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
