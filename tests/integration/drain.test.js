// drain.test.js - SIGTERM with sends in flight (issue 20, item 7): every
// message:send a client emitted before the signal is answered, with its ack
// (stored) or the error 503 "the server is shutting down"; none is left to
// socket.io-client's "socket has been disconnected" with nothing said.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const h = require('./harness');

const proxies = [];
test.after(() => { proxies.forEach((p) => p.close()); h.cleanup(); });

// A TCP proxy to `port` whose client-to-server direction lags `ms` (a far
// client): what a client sent before SIGTERM may reach parley well after
// it. Resolves to { url, port, close() }.
function laggingLink(port, ms) {
  const socks = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    socks.add(down); socks.add(up);
    // Timers of one delay fire in the order they were set: bytes keep
    // their order.
    down.on('data', (d) => setTimeout(() => { if (!up.destroyed) up.write(d); }, ms));
    down.on('end', () => setTimeout(() => up.end(), ms));
    up.on('data', (d) => { if (!down.destroyed) down.write(d); });
    up.on('end', () => down.end());
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const p = server.address().port;
    const link = { url: `http://127.0.0.1:${p}`, port: p, close: () => { socks.forEach((x) => x.destroy()); server.close(); } };
    proxies.push(link);
    resolve(link);
  }));
}

for (const [transport, lag] of [['websocket', 0], ['polling', 0], ['websocket', 150], ['polling', 150]]) {
  test(`${transport}${lag ? `, ${lag} ms from client to server` : ''}: sends racing a SIGTERM each get an ack or a 503, never "socket has been disconnected"`, { timeout: 60000 }, async () => {
    const srv = await h.startParley();
    const link = lag ? await laggingLink(srv.port, lag) : srv;
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      h.connected(h.sioClient(link, '/messages', { query: { userId: `d${i}` }, transports: [transport] }))));
    let killed = false;
    const before = []; // outcomes of the sends emitted before the signal
    let acked = 0;
    const send = (s, i, n) => {
      const emittedBefore = !killed;
      const p = s.emitWithAck('message:send', { conversationId: `drain${i}`, clientMessageId: `${i}-${n}`, type: 'text', content: `${n}` })
        .then((ack) => {
          if (ack.status === 'sent') { acked++; return 'ack'; }
          if (ack.statusCode === 503 && ack.message === 'the server is shutting down') return '503';
          return `unexpected ack ${JSON.stringify(ack)}`;
        }, (e) => e.message);
      if (emittedBefore) before.push(p);
      return p;
    };
    // Each client keeps four sends in flight until it is told to go.
    let going = true;
    const loops = clients.map(async (s, i) => {
      let n = 0;
      const inflight = new Set();
      while (going && s.connected) {
        while (inflight.size < 4 && s.connected) {
          const p = send(s, i, n++);
          inflight.add(p);
          p.then(() => inflight.delete(p));
        }
        await Promise.race(inflight);
      }
      await Promise.all(inflight);
    });
    await h.waitFor(() => acked, (n) => n >= 200, 'sends acked before the signal', 20000);
    killed = true;
    srv.proc.kill('SIGTERM');
    const st = await srv.exited;
    going = false;
    await Promise.all(loops);
    assert.equal(st.code, 0, srv.logs());
    const outcomes = await Promise.all(before);
    const bad = outcomes.filter((o) => o !== 'ack' && o !== '503');
    assert.deepEqual(bad, [], `of ${outcomes.length} sends emitted before SIGTERM, these had no answer:\n${srv.logs()}`);
    clients.forEach((s) => s.close());
  });
}

test('plain WebSocket, 150 ms from client to server: every frame sent before SIGTERM gets its ack or a 503 before the close', { timeout: 60000 }, async () => {
  const srv = await h.startParley();
  const link = await laggingLink(srv.port, 150);
  const clients = await Promise.all(Array.from({ length: 4 }, async (_, i) => {
    const ws = h.frameQueue(new (require('ws'))(`ws://127.0.0.1:${link.port}/messages?userId=plain${i}`), JSON.parse);
    await ws.opened;
    return ws;
  }));
  let killed = false;
  let acked = 0;
  const before = new Map(); // "client/ack id" -> outcome (undefined: none yet)
  const loops = clients.map(async (ws, i) => {
    let open = true;
    ws.on('close', () => { open = false; });
    const answered = new Map();
    const got = new Set();
    ws.on('message', (d) => {
      const f = JSON.parse(String(d));
      if (f.ack === undefined) return;
      const outcome = f.data && f.data.status === 'sent' ? 'ack'
        : f.data && f.data.statusCode === 503 ? '503' : `unexpected ${String(d)}`;
      if (outcome === 'ack') acked++;
      if (before.has(`${i}/${f.ack}`)) before.set(`${i}/${f.ack}`, outcome);
      got.add(f.ack);
      const w = answered.get(f.ack);
      if (w) w();
    });
    for (let n = 1; open; n++) {
      if (!killed) before.set(`${i}/${n}`, undefined);
      ws.send(JSON.stringify({ event: 'message:send', ack: n, data: { conversationId: `plain${i}`, clientMessageId: `${n}`, type: 'text', content: `${n}` } }));
      // Four in flight: wait for the answer to the one sent four before.
      if (n > 4 && !got.has(n - 4)) await Promise.race([new Promise((r) => answered.set(n - 4, r)), ws.closed]);
    }
  });
  await h.waitFor(() => acked, (n) => n >= 100, 'plain sends acked before the signal', 20000);
  killed = true;
  srv.proc.kill('SIGTERM');
  const st = await srv.exited;
  await Promise.all(loops);
  assert.equal(st.code, 0, srv.logs());
  const closes = await Promise.all(clients.map((ws) => ws.closed));
  assert.deepEqual(closes.map((c) => c.code), [1001, 1001, 1001, 1001]);
  const bad = [...before].filter(([, o]) => o !== 'ack' && o !== '503');
  assert.deepEqual(bad, [], `of ${before.size} frames sent before SIGTERM, these had no answer:\n${srv.logs()}`);
});
