// engineio.test.js - raw Engine.IO v4 against the real binary: the polling
// handshake and long-poll, the websocket handshake, the polling->websocket
// upgrade, heartbeats, the close packet, the HTTP 400s, maxPayload and CORS.
// Clients here are fetch() and `ws`, speaking the wire format by hand.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startParley, sleep, pollHandshake, rawEngineWs, metric, waitFor } = require('./harness');

const SEP = '\x1e';

// ---- helpers (local to this file) ----

function pollUrl(srv, extra = '') {
  return `${srv.url}/socket.io/?EIO=4&transport=polling${extra}`;
}

function wsUrl(srv, extra = '') {
  return `ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket${extra}`;
}

async function httpGet(srv, sid, init = {}) {
  const r = await fetch(pollUrl(srv, `&sid=${sid}`), init);
  return { status: r.status, headers: r.headers, body: await r.text() };
}

async function httpPost(srv, sid, body) {
  const r = await fetch(pollUrl(srv, `&sid=${sid}`), { method: 'POST', body });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

function packets(body) {
  return body === '' ? [] : body.split(SEP);
}

// Long-polls until a packet satisfying `match` shows up (answering pings on
// the way); resolves with every packet seen, in order.
async function pollUntil(srv, sid, match, maxPolls = 10) {
  const seen = [];
  for (let i = 0; i < maxPolls; i++) {
    const r = await httpGet(srv, sid);
    assert.equal(r.status, 200, `GET on sid ${sid}: expected 200, got ${r.status} ${r.body}`);
    for (const p of packets(r.body)) {
      seen.push(p);
      if (p === '2') await httpPost(srv, sid, '3');
    }
    if (seen.some(match)) return seen;
  }
  throw new Error(`no matching packet after ${maxPolls} polls; saw ${JSON.stringify(seen)}`);
}

// Settles to true if `promise` has not settled after `ms`.
async function stillPending(promise, ms) {
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  await sleep(ms);
  return !settled;
}

// Resolves with `promise`, or rejects with `what` after ms (a bound on the
// failure side only).
function within(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); }),
  ]);
}

const rawWs = rawEngineWs;

function closeWs(ws) {
  if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
}

function parseOpen(frame) {
  assert.equal(frame[0], '0', `expected an open packet "0{...}", got ${JSON.stringify(frame)}`);
  return JSON.parse(frame.slice(1));
}

async function stopAndCheck(srv) {
  const st = await srv.stop();
  assert.equal(st.code, 0, `parley exit: expected code 0, got ${JSON.stringify(st)}\n${srv.logs()}`);
}

// ---- a server with custom heartbeat values and maxPayload 1000 ----

describe('Engine.IO on parley with PARLEY_PING_INTERVAL=7000 PARLEY_PING_TIMEOUT=6000 PARLEY_MAX_PAYLOAD=1000', () => {
  let srv;
  before(async () => {
    srv = await startParley({
      env: { PARLEY_PING_INTERVAL: '7000', PARLEY_PING_TIMEOUT: '6000', PARLEY_MAX_PAYLOAD: '1000' },
    });
  });
  after(async () => { await stopAndCheck(srv); });

  test('polling handshake: open packet has a 20-char sid, upgrades ["websocket"] and the configured pingInterval/pingTimeout/maxPayload', async () => {
    const r = await fetch(pollUrl(srv));
    const body = await r.text();
    assert.equal(r.status, 200, `handshake status: ${body}`);
    const open = parseOpen(body);
    assert.equal(typeof open.sid, 'string');
    assert.equal(open.sid.length, 20, `sid length: expected 20, got ${open.sid.length} (${open.sid})`);
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, 7000);
    assert.equal(open.pingTimeout, 6000);
    assert.equal(open.maxPayload, 1000);
    // Two handshakes never share a sid.
    const other = await pollHandshake(srv);
    assert.notEqual(other.sid, open.sid);
    await httpPost(srv, open.sid, '1');
    await httpPost(srv, other.sid, '1');
  });

  test('websocket handshake without sid: the first frame is 0{...} with upgrades [] and the configured values', async () => {
    const ws = rawWs(wsUrl(srv));
    try {
      await ws.opened;
      const open = parseOpen(await ws.next());
      assert.equal(open.sid.length, 20, `sid length: expected 20, got ${open.sid}`);
      assert.deepEqual(open.upgrades, []);
      assert.equal(open.pingInterval, 7000);
      assert.equal(open.pingTimeout, 6000);
      assert.equal(open.maxPayload, 1000);
      // The session is usable: connect the /messages namespace over it.
      ws.send('40/messages,{"userId":"ws-hs"}');
      const ack = await ws.next((f) => f.startsWith('40/messages,'));
      assert.match(ack, /^40\/messages,\{"sid":"[^"]+"\}$/);
    } finally {
      closeWs(ws);
    }
  });

  test('long-poll: a GET with nothing queued is held open, and answered with the CONNECT once a POST connects /messages; the POST answers "ok"', async () => {
    const { sid } = await pollHandshake(srv);
    const parked = httpGet(srv, sid);
    assert.ok(await stillPending(parked, 300), 'GET with nothing queued: expected it to be held, but it was answered at once');
    const p = await httpPost(srv, sid, '40/messages,{"userId":"u"}');
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
    const r = await within(parked, 3000, 'the parked GET was not answered');
    assert.equal(r.status, 200);
    const pk = packets(r.body);
    assert.match(pk[0], /^40\/messages,\{"sid":"[^"]+"\}$/, `first packet of the released poll: got ${JSON.stringify(r.body)}`);
    await httpPost(srv, sid, '1');
  });

  test('a POST with packets joined by \\x1e is processed in order: CONNECT, then two events whose acks come back in order', async () => {
    const { sid } = await pollHandshake(srv);
    const p = await httpPost(srv, sid, [
      '40/messages,{"userId":"order"}',
      '42/messages,1["test:echo","first"]',
      '42/messages,2["test:echo","second"]',
    ].join(SEP));
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
    const seen = await pollUntil(srv, sid, (x) => x.startsWith('43/messages,2'));
    const relevant = seen.filter((x) => /^4[03]\/messages,/.test(x));
    assert.equal(relevant.length, 3, `expected CONNECT + 2 acks, got ${JSON.stringify(seen)}`);
    assert.match(relevant[0], /^40\/messages,\{"sid":"[^"]+"\}$/);
    assert.equal(relevant[1], '43/messages,1["first"]');
    assert.equal(relevant[2], '43/messages,2["second"]');
    await httpPost(srv, sid, '1');
  });

  test('upgrade: 2probe->3probe while a GET is parked, the parked GET is released with 6, and after 5 packets flow over the websocket and polling that sid is refused 400', async () => {
    const { sid } = await pollHandshake(srv);
    await httpPost(srv, sid, '40/messages,{"userId":"upgrader"}');
    await pollUntil(srv, sid, (x) => x.startsWith('40/messages,'));
    const parked = httpGet(srv, sid);
    const ws = rawWs(wsUrl(srv, `&sid=${sid}`));
    try {
      await ws.opened;
      ws.send('2probe');
      assert.equal(await ws.next(), '3probe');
      // engine.io releases the parked poll with a noop while probing (the
      // client sends 5 only once its poll returns); see the next test.
      const released = await within(parked, 3000, 'the parked GET was not released during the upgrade');
      assert.equal(released.status, 200);
      assert.equal(released.body, '6', `parked GET during the upgrade: expected "6", got ${JSON.stringify(released.body)}`);
      ws.send('5');

      ws.send('42/messages,7["test:echo",{"via":"ws"}]');
      const ack = await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,7'));
      assert.deepEqual(JSON.parse(ack.slice('43/messages,7'.length)), [{ via: 'ws' }]);
      const g = await httpGet(srv, sid);
      assert.equal(g.status, 400, `polling GET after upgrade: expected 400, got ${g.status} ${g.body}`);
      assert.equal(typeof JSON.parse(g.body).code, 'number');
    } finally {
      closeWs(ws);
    }
  });

  test('upgrade: after 2probe->3probe the server releases the parked GET with a noop 6 before the client sends 5 (socket.io-client waits for its poll to finish before sending 5)', async () => {
    const { sid } = await pollHandshake(srv);
    const parked = httpGet(srv, sid);
    const ws = rawWs(wsUrl(srv, `&sid=${sid}`));
    try {
      await ws.opened;
      ws.send('2probe');
      assert.equal(await ws.next(), '3probe');
      // Bound on the failure side only; engine.io answers within ~100 ms.
      const released = await within(parked, 3000,
        'the parked GET was not released after 3probe (engine.io sends a noop on the polling transport while upgrading); no 6');
      assert.equal(released.status, 200);
      assert.equal(released.body, '6', `parked GET during the upgrade: expected "6", got ${JSON.stringify(released.body)}`);
      ws.send('5');
      ws.send('40/messages,{"userId":"fast-upgrade"}');
      assert.match(await ws.next((f) => f.startsWith('40/messages,')), /^40\/messages,\{"sid":/);
    } finally {
      closeWs(ws);
    }
  });

  test('after the upgrade, scripts see the socket\'s transport as "websocket" (test:whoami)', async () => {
    const { sid } = await pollHandshake(srv);
    await httpPost(srv, sid, '40/messages,{"userId":"upgrader2"}');
    await pollUntil(srv, sid, (x) => x.startsWith('40/messages,'));
    const parked = httpGet(srv, sid);
    const ws = rawWs(wsUrl(srv, `&sid=${sid}`));
    try {
      await ws.opened;
      ws.send('2probe');
      assert.equal(await ws.next(), '3probe');
      ws.send('5');
      assert.equal((await within(parked, 3000, 'the parked GET was not released')).body, '6');
      ws.send('42/messages,8["test:whoami"]');
      const w = await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,8'));
      const me = JSON.parse(w.slice('43/messages,8'.length))[0];
      assert.equal(me.userId, 'upgrader2');
      assert.equal(me.transport, 'websocket', `sock.transport after the upgrade: expected websocket, got ${me.transport}`);
    } finally {
      closeWs(ws);
    }
  });

  // As engine.io (and the official protocol suite's "should forcefully
  // close the session"): the client's own close releases its parked poll
  // with a noop; a close packet there is for closes it did not ask for.
  test('close packet 1 over polling ends the session: a parked GET gets 6 (noop) and the next GET gets 400 Session ID unknown', async () => {
    const { sid } = await pollHandshake(srv);
    const parked = httpGet(srv, sid);
    assert.ok(await stillPending(parked, 50));
    const p = await httpPost(srv, sid, '1');
    assert.equal(p.status, 200);
    const r = await within(parked, 3000, 'the parked GET was not released by the close');
    assert.equal(r.body, '6', `parked GET after close: expected "6", got ${JSON.stringify(r.body)}`);
    const g = await httpGet(srv, sid);
    assert.equal(g.status, 400);
    assert.deepEqual(JSON.parse(g.body), { code: 1, message: 'Session ID unknown' });
  });

  test('close packet 1 over websocket: the server closes the websocket', async () => {
    const ws = rawWs(wsUrl(srv));
    await ws.opened;
    await ws.next();
    ws.send('1');
    await within(ws.closed, 3000, 'the websocket was not closed after the close packet');
  });

  test('EIO=3 is refused: 400 {"code":5,"message":"Unsupported protocol version"}', async () => {
    const r = await fetch(`${srv.url}/socket.io/?EIO=3&transport=polling`);
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { code: 5, message: 'Unsupported protocol version' });
  });

  test('an unknown transport is refused: 400 {"code":0,"message":"Transport unknown"}', async () => {
    const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=carrier-pigeon`);
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { code: 0, message: 'Transport unknown' });
  });

  test('an unknown sid is refused: 400 {"code":1,"message":"Session ID unknown"} for GET and POST', async () => {
    const g = await httpGet(srv, 'AAAAAAAAAAAAAAAAAAAA');
    assert.equal(g.status, 400);
    assert.deepEqual(JSON.parse(g.body), { code: 1, message: 'Session ID unknown' });
    const p = await httpPost(srv, 'AAAAAAAAAAAAAAAAAAAA', '40');
    assert.equal(p.status, 400);
    assert.deepEqual(JSON.parse(p.body), { code: 1, message: 'Session ID unknown' });
  });

  test('a handshake by POST, PUT or DELETE is refused: 400 {"code":2,"message":"Bad handshake method"}', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await fetch(pollUrl(srv), { method, body: method === 'DELETE' ? undefined : '40' });
      const body = await r.text();
      assert.equal(r.status, 400, `${method} handshake: expected 400, got ${r.status} ${body}`);
      assert.deepEqual(JSON.parse(body), { code: 2, message: 'Bad handshake method' }, `${method} handshake body`);
    }
  });

  test('a second concurrent GET on one session gets 400 and closes the session: the first poll gets 1, the sid is then unknown', async () => {
    const { sid } = await pollHandshake(srv);
    const first = httpGet(srv, sid);
    assert.ok(await stillPending(first, 100));
    const second = await httpGet(srv, sid);
    assert.equal(second.status, 400, `second GET: expected 400, got ${second.status} ${second.body}`);
    assert.equal(typeof JSON.parse(second.body).code, 'number');
    const r = await within(first, 3000, 'the first poll was not released');
    assert.equal(r.status, 200);
    assert.equal(r.body, '1', `first poll after the overlap: expected "1", got ${JSON.stringify(r.body)}`);
    const after = await httpGet(srv, sid);
    assert.equal(after.status, 400);
    assert.deepEqual(JSON.parse(after.body), { code: 1, message: 'Session ID unknown' });
  });

  test('maxPayload 1000: a POST body larger than that is refused 413', async () => {
    const { sid } = await pollHandshake(srv);
    const body = '42/messages,["test:echo","' + 'x'.repeat(1500) + '"]';
    const p = await httpPost(srv, sid, body);
    assert.equal(p.status, 413, `POST of ${body.length} bytes: expected 413, got ${p.status} ${p.body}`);
  });

  test('maxPayload 1000: a POST within the limit is accepted (control for the 413)', async () => {
    const { sid } = await pollHandshake(srv);
    const p = await httpPost(srv, sid, '40/messages,{"userId":"' + 'y'.repeat(100) + '"}');
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
    await httpPost(srv, sid, '1');
  });

  test('maxPayload 1000: a websocket message larger than that closes the websocket with code 1009', async () => {
    const ws = rawWs(wsUrl(srv));
    await ws.opened;
    await ws.next();
    ws.send('42/messages,["test:echo","' + 'x'.repeat(1500) + '"]');
    const c = await within(ws.closed, 3000, 'the websocket was not closed');
    assert.equal(c.code, 1009, `close code: expected 1009, got ${c.code} (${c.reason})`);
  });

  test('without FRONTEND_URL any Origin is echoed in access-control-allow-origin, with credentials', async () => {
    const r = await fetch(pollUrl(srv), { headers: { Origin: 'http://anything.example:8080' } });
    const body = await r.text();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://anything.example:8080');
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    await httpPost(srv, JSON.parse(body.slice(1)).sid, '1');
  });
});

// ---- heartbeat ----

describe('Engine.IO heartbeat with PARLEY_PING_INTERVAL=300 PARLEY_PING_TIMEOUT=300', () => {
  let srv;
  before(async () => {
    srv = await startParley({ env: { PARLEY_PING_INTERVAL: '300', PARLEY_PING_TIMEOUT: '300' } });
  });
  after(async () => { await stopAndCheck(srv); });

  test('a websocket client that answers pings with 3 stays connected through four pings and can still talk', async () => {
    const ws = rawWs(wsUrl(srv), { autoPong: true });
    try {
      await ws.opened;
      await ws.next();
      // Four pings: a client that did not answer the first would have been
      // closed before the second's timeout ran out.
      await waitFor(() => ws.pings, (n) => n >= 4 || ws.readyState !== WebSocket.OPEN, 'four pings');
      assert.equal(ws.readyState, WebSocket.OPEN, 'the ponging client was closed');
      ws.send('40/messages,{"userId":"alive"}');
      assert.match(await ws.next((f) => f.startsWith('40/messages,')), /^40\/messages,\{"sid":/);
    } finally {
      closeWs(ws);
    }
  });

  test('a websocket client that never answers pings is closed by the server', async () => {
    const ws = rawWs(wsUrl(srv), { autoPong: false });
    await ws.opened;
    await ws.next();
    await within(ws.closed, 10000, 'the silent client was not closed');
    assert.ok(ws.pings >= 1, `expected at least one ping before the close, got ${ws.pings}`);
  });

  test('a polling session that stops polling is dropped: a later GET with its sid gets 400 Session ID unknown', async () => {
    const { sid } = await pollHandshake(srv);
    // Dropped once interval + timeout (600 ms) pass with no poll: parley
    // counts it gone.
    await waitFor(() => metric(srv, 'parley_connections{transport="polling"}'), (n) => n === 0, 'the silent session dropped');
    const g = await httpGet(srv, sid);
    assert.equal(g.status, 400, `GET after going silent: expected 400, got ${g.status} ${JSON.stringify(g.body)}`);
    assert.deepEqual(JSON.parse(g.body), { code: 1, message: 'Session ID unknown' });
  });
});

// ---- CORS ----

describe('CORS with FRONTEND_URL=http://app.example', () => {
  let srv;
  before(async () => {
    srv = await startParley({ env: { FRONTEND_URL: 'http://app.example' } });
  });
  after(async () => { await stopAndCheck(srv); });

  test('a polling request from Origin http://app.example gets access-control-allow-origin: http://app.example and allow-credentials true', async () => {
    const r = await fetch(pollUrl(srv), { headers: { Origin: 'http://app.example' } });
    const body = await r.text();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    await httpPost(srv, JSON.parse(body.slice(1)).sid, '1');
  });

  test('a polling request from Origin http://evil.example gets no access-control-allow-origin', async () => {
    const r = await fetch(pollUrl(srv), { headers: { Origin: 'http://evil.example' } });
    const body = await r.text();
    assert.equal(r.headers.get('access-control-allow-origin'), null,
      `expected no allow-origin header, got ${r.headers.get('access-control-allow-origin')}`);
    assert.equal(r.headers.get('access-control-allow-credentials'), null);
    if (r.status === 200 && body[0] === '0') await httpPost(srv, JSON.parse(body.slice(1)).sid, '1');
  });

  test('an OPTIONS preflight from the allowed origin gets 204 with access-control-allow-methods listing GET and POST', async () => {
    const r = await fetch(pollUrl(srv), {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://app.example',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type',
      },
    });
    await r.text();
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.example');
    const methods = r.headers.get('access-control-allow-methods') || '';
    assert.match(methods, /\bGET\b/, `allow-methods: ${methods}`);
    assert.match(methods, /\bPOST\b/, `allow-methods: ${methods}`);
  });

  test('a websocket upgrade from a disallowed Origin is refused with 403; from the allowed Origin it opens', async () => {
    const bad = new WebSocket(wsUrl(srv), { origin: 'http://evil.example' });
    const status = await within(new Promise((resolve) => {
      bad.once('unexpected-response', (_req, res) => { resolve(res.statusCode); res.resume(); });
      bad.once('open', () => resolve('opened'));
      bad.once('error', (e) => resolve(`error: ${e.message}`));
    }), 3000, 'no answer to the upgrade');
    bad.terminate();
    assert.equal(status, 403, `upgrade from http://evil.example: expected 403, got ${status}`);

    const good = rawWs(wsUrl(srv), { origin: 'http://app.example' });
    try {
      await good.opened;
      parseOpen(await good.next());
    } finally {
      closeWs(good);
    }
  });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
