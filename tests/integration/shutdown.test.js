// shutdown.test.js - SIGTERM drains (what was acked or in flight is
// committed, clients are told, exit 0); a data directory parley cannot use
// stops it at start with a message that says why, never a crash.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const h = require('./harness');

// A test that fails midway must not leave a parley running (it would keep
// the test process alive).
const running = [];
async function start(opts) {
  const srv = await h.startParley(opts);
  running.push(srv);
  return srv;
}
const holders = [];
test.afterEach(() => {
  for (const srv of running.splice(0)) {
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL');
  }
  for (const proc of holders.splice(0)) if (proc.exitCode === null) proc.kill('SIGKILL');
});

// Resolves to the error code of a TCP connection attempt (null: it connected).
function tryConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.on('connect', () => { c.destroy(); resolve(null); });
    c.on('error', (e) => resolve(e.code));
  });
}

// Every message of a conversation, read back through messages:sync.
async function storedIds(srv, conversationId) {
  const r = h.sioClient(srv, '/messages', { query: { userId: 'reader' }, transports: ['websocket'] });
  await h.connected(r);
  const ids = new Set();
  let after;
  for (;;) {
    const page = await r.timeout(5000).emitWithAck('messages:sync', { conversationId, after, limit: 500 });
    page.messages.forEach((m) => ids.add(m.messageId));
    if (!page.hasMore) break;
    after = page.messages[page.messages.length - 1].messageId;
  }
  r.close();
  return ids;
}

test('SIGTERM while clients send: exit 0; websocket and polling Socket.IO clients see "transport close", a plain WebSocket 1001; every acked message is there after a restart', { timeout: 60000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-term-'));
  let srv = await start({ dataDir });
  const acked = [];
  const reasons = {};
  const clients = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const transport = i === 0 ? 'polling' : 'websocket';
    const s = h.sioClient(srv, '/messages', { query: { userId: `t${i}` }, transports: [transport] });
    s.on('disconnect', (why) => { reasons[`t${i}`] = `${transport}: ${why}`; });
    await h.connected(s);
    return s;
  }));
  const plain = h.plainClient(srv, 'userId=plain');
  await plain.opened;
  let stop = false;
  const loops = clients.map(async (s, i) => {
    for (let n = 0; !stop; n++) {
      try {
        const ack = await s.timeout(5000).emitWithAck('message:send',
          { conversationId: 'term', clientMessageId: `t${i}-${n}`, type: 'text', content: `${i}/${n}` });
        if (ack.status === 'sent') acked.push(ack.messageId);
        // Sent while the server drained: refused, and said so.
        else if (ack.statusCode === 503) assert.equal(ack.message, 'the server is shutting down');
        else throw new Error(`unexpected ack ${JSON.stringify(ack)}`);
      } catch (e) {
        if (!/disconnected/.test(e.message)) throw e;
        return;
      }
    }
  });
  // Well into the sends: 50 acked (and more in flight) when SIGTERM comes.
  const deadline = Date.now() + 20000;
  while (acked.length < 50 && Date.now() < deadline) await h.sleep(5);
  assert.ok(acked.length >= 50, `only ${acked.length} sends acked in 20 s`);
  srv.proc.kill('SIGTERM');
  // A newcomer is turned away while the others drain: refused by the
  // kernel, or (while polling sessions wait to be told) answered 503.
  const late = h.sioClient(srv, '/messages', { query: { userId: 'late' }, transports: ['websocket'] });
  const lateError = await new Promise((resolve) => {
    late.on('connect', () => resolve(null));
    late.on('connect_error', (e) => resolve(e));
    late.connect();
  });
  late.close();
  assert.ok(lateError, 'a client connected after SIGTERM');
  const health = await fetch(`${srv.url}/healthz`).then((r) => r.status, (e) => e.cause && e.cause.code);
  assert.ok(health === 503 || health === 'ECONNREFUSED', `/healthz after SIGTERM: ${health}`);
  const st = await srv.exited;
  stop = true;
  await Promise.all(loops);
  assert.deepEqual({ code: st.code, signal: st.signal }, { code: 0, signal: null }, srv.logs());
  const expected = {};
  clients.forEach((_, i) => { expected[`t${i}`] = `${i === 0 ? 'polling' : 'websocket'}: transport close`; });
  assert.deepEqual(reasons, expected, 'how each Socket.IO client heard the server go');
  const pc = await plain.closed;
  assert.deepEqual(pc, { code: 1001, reason: 'server shutting down' }, 'the plain WebSocket close');
  clients.forEach((s) => s.close());

  srv = await start({ dataDir });
  const ids = await storedIds(srv, 'term');
  assert.deepEqual(acked.filter((id) => !ids.has(id)), [], 'acked messages were lost in the drain');
  await srv.stop();
});

// Resolves once parley's log matches `re` (a line it writes as it acts).
async function logged(srv, re, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!re.test(srv.logs())) {
    if (Date.now() > deadline) assert.fail(`no log line ${re} within ${ms} ms:\n${srv.logs()}`);
    await h.sleep(10);
  }
}

// Resolves once parley counts `n` open WebSocket connections.
async function closedOnServer(srv, n, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    if (Number(/^parley_connections\{transport="websocket"\} (\d+)$/m.exec(text)[1]) === n) return;
    if (Date.now() > deadline) assert.fail(`parley does not count ${n} WebSocket connections`);
    await h.sleep(10);
  }
}

// Holds the store's write lock from another process (build/lmdb_hold):
// parley's writer cannot commit until release() is called.
async function holdStore(dataDir) {
  const proc = spawn(path.join(path.dirname(h.BINARY), 'lmdb_hold'), [dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  holders.push(proc);
  await new Promise((resolve, reject) => {
    proc.stdout.once('data', (d) => (String(d).startsWith('held') ? resolve() : reject(new Error(String(d)))));
    proc.once('exit', (code) => reject(new Error(`lmdb_hold exited with ${code}`)));
  });
  return { release: () => { proc.stdin.end(); return new Promise((resolve) => proc.once('exit', resolve)); } };
}

test('SIGTERM with a send in flight (its commit held back): new connections are refused at once, a send made during the drain gets 503, a SIGHUP reloads nothing, the in-flight send is acked before the close and is stored', { timeout: 60000, ...h.lmdbOnly('LMDB\'s write lock (lmdb_hold) or its data directory') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-inflight-'));
  let srv = await start({ dataDir, env: { PARLEY_SHUTDOWN_TIMEOUT: '30000' } });
  const s = h.sioClient(srv, '/messages', { query: { userId: 'inflight' }, transports: ['websocket'] });
  await h.connected(s);
  const t0 = Date.now();
  const timeline = [];
  const mark = (what) => timeline.push(`${Date.now() - t0} ms: ${what}`);
  const order = [];
  s.on('disconnect', (why) => { order.push(`disconnect: ${why}`); mark(`disconnect: ${why}`); });
  const explain = () => `${timeline.join('\n')}\n${srv.logs()}`;

  const lock = await holdStore(dataDir);
  let ack = null;
  const acking = s.timeout(30000).emitWithAck('message:send',
    { conversationId: 'inflight', clientMessageId: 'm1', type: 'text', content: 'in flight' })
    .then((a) => { ack = a; order.push(`ack: ${a.status}`); mark(`ack: ${a.status}`); return a; });
  // Events are taken in order: once this answers, the send waits for its commit.
  assert.equal(await s.timeout(5000).emitWithAck('test:echo', 'after the send'), 'after the send');
  mark('SIGTERM');
  srv.proc.kill('SIGTERM');

  // The listening socket closes, while the server stays for the clients it has.
  const deadline = Date.now() + 5000;
  let code;
  while ((code = await tryConnect(srv.port)) !== 'ECONNREFUSED' && Date.now() < deadline) await h.sleep(10);
  mark(`connect: ${code}`);
  assert.equal(code, 'ECONNREFUSED', `a connection attempted after SIGTERM was not refused\n${explain()}`);
  assert.equal(srv.proc.exitCode, null, 'parley exited with a write in flight');
  // A send made during the drain is refused with 503: the client knows to send it again.
  let late;
  try {
    late = await s.timeout(5000).emitWithAck('message:send',
      { conversationId: 'inflight', clientMessageId: 'm2', type: 'text', content: 'too late' });
  } catch (e) {
    assert.fail(`the send during the drain got no answer (${e.message}):\n${explain()}`);
  }
  assert.deepEqual({ statusCode: late.statusCode, message: late.message }, { statusCode: 503, message: 'the server is shutting down' });
  // A reload asked for now is refused: the scripts that ran are the ones
  // whose shutdown hooks run.
  mark('SIGHUP');
  srv.proc.kill('SIGHUP');
  await logged(srv, /reload ignored: parley is shutting down/);
  assert.equal(ack, null, `acked before its write was committed\n${explain()}`);

  mark('commit released');
  await lock.release();
  assert.equal((await acking).status, 'sent');
  const st = await srv.exited;
  assert.deepEqual({ code: st.code, signal: st.signal }, { code: 0, signal: null }, srv.logs());
  // The process's exit may be seen before the socket's close is read.
  await h.waitFor(() => order.length, (n) => n >= 2, `the disconnect\n${explain()}`);
  assert.deepEqual(order, ['ack: sent', 'disconnect: transport close'], explain());
  assert.match(srv.logs(), /stopping: new connections are refused; waiting for the store, then closing 1 connections/);
  assert.match(srv.logs(), /reload ignored: parley is shutting down/);
  assert.doesNotMatch(srv.logs(), /scripts reloaded/);
  s.close();

  srv = await start({ dataDir });
  const ids = await storedIds(srv, 'inflight');
  assert.deepEqual([...ids], [ack.messageId], 'the send acked during the drain is stored, the refused one is not');
  await srv.stop();
});

test('SIGTERM at any moment of the polling->websocket upgrade: the seed\'s client (default transports) is told "transport close", never left waiting', { timeout: 60000 }, async () => {
  // socket.io-client pauses its polling once the probe answers "3probe" and
  // listens only on the probe until it sends "5": a close queued for polling
  // then reaches nobody. Stop the server at delays that land before, inside
  // and after the upgrade.
  const outcomes = [];
  for (const delay of Array.from({ length: 24 }, (_, i) => i % 4)) {
    const srv = await start();
    const s = h.sioClient(srv, '/messages', { query: { userId: 'upgrader' }, reconnection: false });
    await h.connected(s);
    if (delay) await h.sleep(delay);
    const transport = s.io.engine.transport.name;
    const told = new Promise((resolve) => s.on('disconnect', resolve));
    srv.proc.kill('SIGTERM');
    const why = await Promise.race([told, h.sleep(5000).then(() => 'nothing within 5 s')]);
    s.close();
    const st = await srv.exited;
    outcomes.push(`${delay} ms (${transport}): ${why}, exit ${st.code}`);
    assert.equal(why, 'transport close', outcomes.join('\n'));
    assert.equal(st.code, 0, outcomes.join('\n'));
  }
});

test('lastSeen survives SIGTERM: a user online at shutdown and one inside the grace period both have one after a restart', { timeout: 30000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-seen-'));
  const KEY = 'seen-api-key';
  let srv = await start({ dataDir, env: { PARLEY_API_KEY: KEY } });
  const online = h.sioClient(srv, '/messages', { query: { userId: 'still-online' }, transports: ['websocket'] });
  const leaving = h.sioClient(srv, '/messages', { query: { userId: 'just-left' }, transports: ['websocket'] });
  await Promise.all([h.connected(online), h.connected(leaving)]);
  const before = Date.now();
  leaving.close(); // inside the 5 s grace when SIGTERM comes: no sweep has written it
  await closedOnServer(srv, 1);
  const st = await srv.stop();
  assert.equal(st.code, 0, srv.logs());
  online.close();

  srv = await start({ dataDir, env: { PARLEY_API_KEY: KEY } });
  // presence:query answers about those who share a conversation with the asker.
  const put = await fetch(`${srv.url}/api/conversations/seen/members`, { method: 'PUT',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ members: ['asker', 'still-online', 'just-left', 'never-seen'] }) });
  assert.equal(put.status, 200);
  const q = h.sioClient(srv, '/messages', { query: { userId: 'asker' }, transports: ['websocket'] });
  await h.connected(q);
  const { users } = await q.timeout(3000).emitWithAck('presence:query', { userIds: ['still-online', 'just-left', 'never-seen'] });
  q.close();
  const byId = Object.fromEntries(users.map((u) => [u.userId, u]));
  for (const id of ['still-online', 'just-left']) {
    assert.equal(byId[id].online, false, id);
    assert.equal(typeof byId[id].lastSeen, 'string', `${id} has no lastSeen after the restart: ${JSON.stringify(byId[id])}`);
    const t = Date.parse(byId[id].lastSeen);
    assert.ok(t >= before - 1000 && t <= Date.now(), `${id}: lastSeen ${byId[id].lastSeen} is not the time it went`);
  }
  assert.equal(byId['never-seen'].lastSeen, null);
  // The HTTP API reads the same.
  const r = await fetch(`${srv.url}/api/users/still-online/presence`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).lastSeen, byId['still-online'].lastSeen);
  await srv.stop();
});

function startWith(dataDir, port) {
  return spawnSync(h.BINARY, [], { cwd: h.ROOT, encoding: 'utf8', timeout: 10000,
    env: { PATH: process.env.PATH, PORT: String(port), PARLEY_DATA_DIR: dataDir, PARLEY_LOG: 'info' } });
}

test('a data directory that is not an LMDB database, a file, or under a missing parent: a clear start-up error, exit 1', h.lmdbOnly('LMDB\'s write lock (lmdb_hold) or its data directory'), async () => {
  const port = await h.freePort();
  const corrupt = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-corrupt-'));
  fs.writeFileSync(path.join(corrupt, 'data.mdb'), Buffer.alloc(64 * 1024, 0x5a));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parley-file-')), 'not-a-dir');
  fs.writeFileSync(file, 'x');
  for (const [dir, message] of [
    [corrupt, /store: cannot open the database in .*: MDB_INVALID: File is not an LMDB file/],
    [file, /store: cannot create the data directory .*|is not a directory/],
    ['/nonexistent-parent/deeper/data', /store: cannot create the data directory \/nonexistent-parent\/deeper\/data: No such file or directory/],
  ]) {
    const r = startWith(dir, port);
    assert.equal(r.status, 1, `${dir}: exit ${r.status} ${r.signal || ''}\n${r.stderr}`);
    assert.match(r.stderr + r.stdout, message);
  }
});

test('during the drain, while a polling session waits to be told: /healthz, a new Socket.IO session, a WebSocket upgrade, a plain WebSocket and an HTTP API call are each answered 503', { timeout: 60000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-drain503-'));
  const KEY = 'drain-api-key';
  const srv = await start({ dataDir, env: { PARLEY_API_KEY: KEY, PARLEY_SHUTDOWN_TIMEOUT: '30000' } });
  // A polling session keeps the listening socket open until it is told,
  // and a send whose commit is held keeps the drain from telling it.
  const poller = h.sioClient(srv, '/messages', { query: { userId: 'poller' }, transports: ['polling'] });
  const sender = h.sioClient(srv, '/messages', { query: { userId: 'sender' }, transports: ['websocket'] });
  await Promise.all([h.connected(poller), h.connected(sender)]);
  const lock = await holdStore(dataDir);
  const acking = sender.timeout(30000).emitWithAck('message:send',
    { conversationId: 'drain503', clientMessageId: 'held', type: 'text', content: 'held' });
  assert.equal(await sender.timeout(5000).emitWithAck('test:echo', 'queued'), 'queued');
  srv.proc.kill('SIGTERM');
  await logged(srv, /stopping: new connections are refused/);

  const health = await fetch(`${srv.url}/healthz`);
  assert.equal(health.status, 503, '/healthz during the drain');
  assert.deepEqual(await health.json(), { status: 'shutting down' });
  const handshake = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(handshake.status, 503, `a new polling session: ${await handshake.text()}`);
  const api = await fetch(`${srv.url}/api/users/online`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(api.status, 503, 'an HTTP API call');
  assert.equal((await api.json()).statusCode, 503);
  for (const url of [`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`,
    `ws://127.0.0.1:${srv.port}/messages?userId=late`]) {
    const status = await new Promise((resolve) => {
      const ws = new (require('ws'))(url);
      ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); ws.terminate(); });
      ws.on('open', () => { resolve('open'); ws.terminate(); });
      ws.on('error', (e) => resolve(e.message));
    });
    assert.equal(status, 503, `a WebSocket upgrade to ${url}`);
  }
  // The drain goes on once the store can commit.
  await lock.release();
  assert.equal((await acking).status, 'sent');
  assert.deepEqual(await srv.exited, { code: 0, signal: null }, srv.logs());
});

test('PARLEY_SHUTDOWN_TIMEOUT runs out while the store cannot commit: the clients are told anyway (the send in flight unacked), and parley exits 0 once the store lets it', { timeout: 60000, ...h.lmdbOnly('LMDB\'s write lock (lmdb_hold) or its data directory') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-drainout-'));
  const srv = await start({ dataDir, env: { PARLEY_SHUTDOWN_TIMEOUT: '900' } });
  const s = h.sioClient(srv, '/messages', { query: { userId: 'stuck' }, transports: ['websocket'] });
  await h.connected(s);
  const lock = await holdStore(dataDir);
  let ack = null;
  s.timeout(60000).emitWithAck('message:send',
    { conversationId: 'drainout', clientMessageId: 'stuck', type: 'text', content: 'stuck' })
    .then((a) => { ack = a; }, () => {});
  assert.equal(await s.timeout(5000).emitWithAck('test:echo', 'queued'), 'queued');
  const told = h.once(s, 'disconnect', 20000).then((a) => (Array.isArray(a) ? a[0] : a));
  srv.proc.kill('SIGTERM');
  // Two thirds of 900 ms to settle; the store never does while it is held.
  assert.equal(await told, 'transport close');
  assert.equal(ack, null, 'acked while its commit was held');
  assert.match(srv.logs(), /stopping: the store did not settle within PARLEY_SHUTDOWN_TIMEOUT: closing the connections anyway/);
  assert.equal(srv.proc.exitCode, null, 'parley exited with its store still held');
  await lock.release();
  assert.deepEqual(await srv.exited, { code: 0, signal: null }, srv.logs());
});

test('PARLEY_SHUTDOWN_TIMEOUT runs out while a client does not finish its closing handshake: parley closes it and exits 0', { timeout: 60000 }, async () => {
  const srv = await start({ env: { PARLEY_SHUTDOWN_TIMEOUT: '900' } });
  const stuck = h.plainClient(srv, 'userId=deaf');
  await stuck.opened;
  stuck.sendJson({ event: 'test:echo', data: 'hi', ack: 1 });
  await stuck.next((f) => f.ack === 1);
  // It reads nothing from now on, so it never answers the close frame.
  stuck._socket.pause();
  const ok = h.sioClient(srv, '/messages', { query: { userId: 'fine' }, transports: ['websocket'] });
  await h.connected(ok);
  const told = h.once(ok, 'disconnect', 20000).then((a) => (Array.isArray(a) ? a[0] : a));
  srv.proc.kill('SIGTERM');
  assert.equal(await told, 'transport close');
  const st = await Promise.race([srv.exited, h.sleep(20000).then(() => 'still running 20 s after SIGTERM')]);
  assert.deepEqual(st, { code: 0, signal: null }, srv.logs());
  assert.match(srv.logs(), /stopping: 0 connections, 1 WebSockets and 0 API requests left after PARLEY_SHUTDOWN_TIMEOUT: closing them/);
  stuck.terminate();
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
