// offender.js - helpers for the bad-input tests (badinput.test.js,
// badmatrix.test.js): raw clients that can send what no library would, and
// withBystander(), which keeps two innocent socket.io clients connected
// through a whole describe block and checks them after each case.
'use strict';
const { before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { startParley, sleep, sioClient, connected, once, pollHandshake, rawEngineWs } = require('./harness');

const SEP = '\x1e';

function within(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); }),
  ]);
}

function pollUrl(srv, extra = '') {
  return `${srv.url}/socket.io/?EIO=4&transport=polling${extra}`;
}

// A raw Engine.IO websocket that answers pings; frames queue for next().
function rawWs(srv) {
  return rawEngineWs(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
}

// A raw websocket with the Engine.IO open done and, unless nsp is null,
// the /messages namespace connected as `userId`.
async function rawSio(srv, userId = 'offender', nsp = '/messages') {
  const ws = rawWs(srv);
  await ws.opened;
  const open = await ws.next();
  assert.equal(open[0], '0', `open packet: ${open}`);
  if (nsp) {
    ws.send(`40${nsp},${JSON.stringify({ userId })}`);
    const c = await ws.next((f) => typeof f === 'string' && f.startsWith(`40${nsp},`));
    assert.match(c, /^40\/messages,\{"sid":"[^"]+"\}$/);
  }
  return ws;
}

// Asserts the server closes `ws` (bound on the failure side only), and that
// it was the server, not the ws library refusing something the server sent.
async function assertClosedByServer(ws, what) {
  const c = await within(ws.closed, 3000, `${what}: the offending connection was not closed`);
  assert.deepEqual(ws.clientErrors, [], `${what}: the client library failed instead (server sent something invalid)`);
  return c;
}

function terminate(ws) {
  if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.terminate();
}

// Raw TCP: writes `data`, collects the reply until the server closes (or
// the bound passes). Resolves { out, closedBy } where closedBy is 'server'
// or 'timeout'.
function rawTcp(port, data, boundMs = 3000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = Buffer.alloc(0);
    let done = false;
    const finish = (closedBy, err) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ out: out.toString('latin1'), closedBy, err });
    };
    const t = setTimeout(() => finish('timeout'), boundMs);
    s.on('data', (d) => { out = Buffer.concat([out, d]); });
    s.on('end', () => finish('server'));
    s.on('close', () => finish('server'));
    s.on('error', (e) => finish('server', e.code));
    s.on('connect', () => s.write(data));
  });
}

function statusOf(rawReply) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(rawReply);
  return m ? Number(m[1]) : null;
}

async function httpGet(srv, sid) {
  const r = await fetch(pollUrl(srv, `&sid=${sid}`));
  return { status: r.status, body: await r.text() };
}

async function httpPost(srv, sid, body) {
  const r = await fetch(pollUrl(srv, `&sid=${sid}`), { method: 'POST', body });
  return { status: r.status, body: await r.text() };
}

// A polling session with /messages connected; resolves to its sid.
async function pollSession(srv, userId) {
  const { sid } = await pollHandshake(srv);
  await httpPost(srv, sid, `40/messages,${JSON.stringify({ userId })}`);
  for (let i = 0; i < 5; i++) {
    const r = await httpGet(srv, sid);
    if (r.body.split(SEP).some((p) => p.startsWith('40/messages,{"sid"'))) return sid;
  }
  throw new Error('polling session did not connect /messages');
}



// Registers before/after hooks in the current describe: a parley, and two
// bystander socket.io clients connected and in a room before any case runs,
// one on each transport (fixed transports, so that no upgrade is in flight
// while the cases run: the upgrade has its own tests in engineio.test.js).
function withBystander(parleyOpts = {}) {
  const ctx = {};
  const bystanders = [];
  let disconnects = [];
  let round = 0;

  before(async () => {
    ctx.srv = await startParley(parleyOpts);
    for (const transport of ['websocket', 'polling']) {
      const b = sioClient(ctx.srv, '/messages', { query: { userId: `bystander-${transport}` }, transports: [transport] });
      b.on('disconnect', (why) => { disconnects.push(`${transport}: ${why}`); });
      await connected(b);
      const joined = await b.timeout(3000).emitWithAck('conversation:join', { conversationId: 'bystanders' });
      assert.deepEqual(joined, { conversationId: 'bystanders', success: true });
      b.transportName = transport;
      bystanders.push(b);
    }
  });

  after(async () => {
    const srv = ctx.srv;
    for (const b of bystanders) b.disconnect();
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley exit: expected code 0, got ${JSON.stringify(st)}\n${srv.logs()}`);
  });

  // The bystanders still send and receive (each other's broadcasts too),
  // and the server is alive.
  ctx.bystanderUnharmed = async function bystanderUnharmed(what) {
    const srv = ctx.srv;
    assert.equal(srv.proc.exitCode, null, `after ${what}: parley exited (${srv.proc.exitCode})\n${srv.logs()}`);
    assert.equal(srv.proc.signalCode, null, `after ${what}: parley died by ${srv.proc.signalCode}\n${srv.logs()}`);
    assert.deepEqual(disconnects, [], `after ${what}: a bystander was disconnected`);
    for (const b of bystanders) {
      const n = ++round;
      let echoed;
      try {
        echoed = await b.timeout(3000).emitWithAck('test:echo', { round: n, what });
      } catch (e) {
        assert.fail(`after ${what}: the ${b.transportName} bystander's test:echo got no ack (${e.message}); connected=${b.connected}`);
      }
      assert.deepEqual(echoed, { round: n, what }, `after ${what}: ${b.transportName} bystander echo`);
    }
    const [a, b] = bystanders;
    const got = once(b, 'typing:start');
    a.emit('typing:start', { conversationId: 'bystanders', isTyping: true });
    const t = await got.catch((e) => assert.fail(`after ${what}: the polling bystander did not receive the room broadcast (${e.message})`));
    assert.equal(t.userId, 'bystander-websocket');
    const h = await fetch(`${srv.url}/healthz`);
    assert.equal(h.status, 200, `after ${what}: /healthz`);
  };
  return ctx;
}

// The sum of every counter a refusal lands in: protocol errors, error
// events and refused connections by status, HTTP errors, limits.
async function refusals(srv) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (/^parley_(protocol_errors|errors|http_errors|limits)_total[{ ]/.test(line))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

module.exports = {
  SEP, within, pollUrl, rawWs, rawSio, assertClosedByServer, terminate, rawTcp, statusOf,
  httpGet, httpPost, pollSession, withBystander, refusals,
};
