// transport.test.js - the Engine.IO transport where real clients trip
// (issue 17): a poll sent together with the POST closing its session gets a
// noop, whichever lws serves first; a session the server closes answers its
// parked poll with the close packet; a second WebSocket upgrade of a session
// is accepted and closed, not refused with a status a Node client throws on;
// "*" in FRONTEND_URL is any origin, for polling and WebSocket alike; every
// HTTP answer after which parley closes the connection says "connection:
// close", so a keep-alive client does not send its next request on a dead
// socket.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { startParley, metric, pollHandshake, rawEngineWs, waitFor, cleanup } = require('./harness');

const poll = (srv, sid) => `${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
const wsUrl = (srv, sid) => `ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket${sid ? `&sid=${sid}` : ''}`;

// One request on its own TCP connection, as written; resolves to the
// answer's { status, headers, body } and whether the server then closed.
function rawRequest(port, text) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    let buf = Buffer.alloc(0);
    let answer = null;
    const t = setTimeout(() => { sock.destroy(); resolve({ ...answer, closed: false }); }, 3000);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (answer || end < 0) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      answer = { status: Number(lines[0].split(' ')[1]), headers };
    });
    sock.on('end', () => { clearTimeout(t); sock.destroy(); resolve({ ...answer, closed: true }); });
    sock.on('error', reject);
  });
}

// Upgrades a polling session to WebSocket (probe, "3probe", "5").
async function upgraded(srv, sid) {
  const ws = rawEngineWs(wsUrl(srv, sid));
  await ws.opened;
  ws.send('2probe');
  assert.equal(await ws.next((f) => f === '3probe'), '3probe');
  ws.send('5');
  return ws;
}

describe('Engine.IO sessions', () => {
  let srv;
  before(async () => { srv = await startParley(); });
  after(async () => { await srv.stop(); });

  test('a poll and the POST closing the session sent at once, each on its own connection: the poll gets 6 (noop), 50 times out of 50', async () => {
    // As the official suite's "should forcefully close the session" does:
    // the two requests reach parley together, and lws serves them in no
    // set order; the close waits for the end of the loop iteration.
    const request = (method, url, body) => new Promise((resolve, reject) => {
      const r = http.request(url, { method, agent: false, headers: body ? { 'Content-Length': body.length } : {} }, (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, body: text }));
      });
      r.on('error', reject);
      r.end(body);
    });
    const answers = [];
    for (let i = 0; i < 50; i++) {
      const { sid } = await pollHandshake(srv);
      const [got] = await Promise.all([request('GET', poll(srv, sid)), request('POST', poll(srv, sid), '1')]);
      answers.push(`${got.status} ${got.body}`);
    }
    const wrong = answers.filter((a) => a !== '200 6');
    assert.deepEqual(wrong, [], `${wrong.length} of 50 polls were not answered 200 6`);
  });

  test('a session the server closes still answers its parked poll with the close packet (1)', async () => {
    const s = await startParley({ env: { PARLEY_PING_INTERVAL: '200', PARLEY_PING_TIMEOUT: '200' } });
    try {
      const { sid } = await pollHandshake(s);
      // The first poll takes the ping; the client never answers it, so the
      // next poll is parked until the ping timeout closes the session.
      const first = await (await fetch(poll(s, sid))).text();
      assert.equal(first, '2');
      const second = await fetch(poll(s, sid));
      assert.equal(await second.text(), '1');
    } finally {
      await s.stop();
    }
  });

  test('a second WebSocket with the sid of an upgraded session is accepted, then closed with 1008; the first goes on', async () => {
    const { sid } = await pollHandshake(srv);
    const first = await upgraded(srv, sid);
    // The upgrade is done once the session's polling is refused.
    await waitFor(async () => (await fetch(poll(srv, sid))).status, (s) => s === 400, 'the upgrade');
    const counted = 'parley_protocol_errors_total{kind="duplicate_upgrade"}';
    const before = (await metric(srv, counted)) || 0;
    const second = rawEngineWs(wsUrl(srv, sid));
    await second.opened; // a 400 would reject: "Unexpected server response"
    const closed = await second.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'transport already upgraded');
    assert.equal(await metric(srv, counted), before + 1);
    assert.match(srv.logs(), new RegExp(`${sid}: a WebSocket upgrade of a session that has one already`));
    first.send('40/messages,{"userId":"first"}');
    assert.match(await first.next((f) => f.startsWith('40/messages,')), /^40\/messages,\{"sid":/);
    first.close();
  });

  test('a second WebSocket while the first is still probing is accepted and closed; the probe upgrades', async () => {
    const { sid } = await pollHandshake(srv);
    const probe = rawEngineWs(wsUrl(srv, sid));
    await probe.opened;
    const second = rawEngineWs(wsUrl(srv, sid));
    await second.opened;
    assert.equal((await second.closed).code, 1008);
    probe.send('2probe');
    assert.equal(await probe.next((f) => f === '3probe'), '3probe');
    probe.send('5');
    probe.send('40/messages,{"userId":"probe"}');
    assert.match(await probe.next((f) => f.startsWith('40/messages,')), /^40\/messages,\{"sid":/);
    probe.close();
  });

  test('a WebSocket upgrade with a sid that was never issued is still refused with 400', async () => {
    const ws = new WebSocket(wsUrl(srv, 'AAAAAAAAAAAAAAAAAAAA'));
    const status = await new Promise((resolve) => {
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); ws.terminate(); });
      ws.on('open', () => { resolve(101); ws.close(); });
      ws.on('error', () => {});
    });
    assert.equal(status, 400);
  });
});

describe('FRONTEND_URL=*', () => {
  let srv;
  before(async () => { srv = await startParley({ env: { FRONTEND_URL: '*' } }); });
  after(async () => { await srv.stop(); });

  test('a polling request from any Origin gets it back in access-control-allow-origin, with credentials', async () => {
    const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'http://anywhere.example:5173' } });
    const body = await r.text();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://anywhere.example:5173');
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    await fetch(poll(srv, JSON.parse(body.slice(1)).sid), { method: 'POST', body: '1' }).then((x) => x.text());
  });

  test('a WebSocket upgrade from any Origin is accepted (a browser sends one), for Engine.IO and the plain endpoint', async () => {
    for (const url of [wsUrl(srv), `ws://127.0.0.1:${srv.port}/messages?userId=star`]) {
      const ws = rawEngineWs(url, { origin: 'http://anywhere.example:5173' });
      await ws.opened; // a 403 would reject
      ws.close();
      await ws.closed;
    }
  });

  test('a list with * in it allows any origin too; without it, another origin is still refused 403', async () => {
    const listed = await startParley({ env: { FRONTEND_URL: 'http://app.example, *' } });
    const strict = await startParley({ env: { FRONTEND_URL: 'http://app.example' } });
    try {
      const ok = rawEngineWs(wsUrl(listed), { origin: 'http://other.example' });
      await ok.opened;
      ok.close();
      const refused = new WebSocket(wsUrl(strict), { origin: 'http://other.example' });
      const status = await new Promise((resolve) => {
        refused.on('unexpected-response', (_req, res) => { resolve(res.statusCode); refused.terminate(); });
        refused.on('open', () => { resolve(101); refused.close(); });
        refused.on('error', () => {});
      });
      assert.equal(status, 403);
    } finally {
      await listed.stop();
      await strict.stop();
    }
  });
});

describe('connection: close on every answer after which parley closes', () => {
  let srv, web;
  before(async () => {
    web = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-transport-'));
    fs.writeFileSync(path.join(web, 'hello.txt'), 'hello');
    srv = await startParley({ env: { PARLEY_STATIC: `/web=${web}` } });
  });
  after(async () => {
    await srv.stop();
    fs.rmSync(web, { recursive: true, force: true });
  });

  test('a keep-alive agent sending "Connection: close" (as node-fetch does on Node >= 19) gets every answer: none hangs up', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (p) => new Promise((resolve, reject) => {
      http.get(`${srv.url}${p}`, { agent, headers: { Connection: 'close' } }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection, body }));
      }).on('error', reject);
    });
    try {
      const paths = ['/socket.io/?EIO=4&transport=polling', '/socket.io/?transport=polling',
        '/socket.io/?EIO=abc&transport=polling', '/healthz', '/nowhere', '/web/hello.txt'];
      for (const p of paths) {
        const r = await get(p);
        assert.equal(r.connection, 'close', `${p}: answered ${r.status} without connection: close`);
      }
    } finally {
      agent.destroy();
    }
  });

  test('HTTP/1.0 requests (no keep-alive) and "Connection: close" requests: the answer says close and the connection ends', async () => {
    const cases = [
      ['GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n', 200],
      ['GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200],
      ['GET /socket.io/?EIO=4&transport=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
      ['OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 204],
      ['GET /web/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 200],
      ['GET /web/hello.txt HTTP/1.0\r\nHost: x\r\n\r\n', 200],
    ];
    for (const [text, status] of cases) {
      const r = await rawRequest(srv.port, text);
      const line = text.split('\r\n')[0];
      assert.equal(r.status, status, line);
      assert.equal(r.headers.connection, 'close', `${line}: ${JSON.stringify(r.headers)}`);
      assert.ok(r.closed, `${line}: the connection stayed open`);
    }
  });

  test('a kept-alive HTTP/1.1 request is answered without connection: close and the connection serves the next', async () => {
    const r = await rawRequest(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, undefined);
    assert.equal(r.closed, false);
  });

  test('an upgrade on a connection that served HTTP before: 400 with connection: close', async () => {
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let text = '';
    sock.on('data', (d) => { text += d; });
    const ended = new Promise((r) => sock.once('end', r));
    sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => text, (t) => /\r\n\r\n\{/.test(t), 'the first answer', 3000);
    text = '';
    sock.write('GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n' +
      'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await ended;
    sock.destroy();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
  });
});

after(cleanup);
