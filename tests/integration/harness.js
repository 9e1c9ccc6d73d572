// harness.js - starts the real parley binary on a loopback port for a test
// file, and gives tests small helpers for real clients. Nothing here stands
// in for parley: every test talks to the built binary over TCP.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const { after } = require('node:test');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..', '..');
const BINARY = process.env.PARLEY_BIN || path.join(ROOT, 'build', 'parley');

// Everything the harness started in this test file, for cleanup().
const spawned = new Set();
const clients = new Set();

// Kills every parley this file started that still runs and closes every
// client the harness made. A test file calls it in its last `after` hook,
// once its own graceful stops ran: a failed assertion then never leaves a
// parley or a socket that keeps the file's process (and the run) alive.
function cleanup() {
  for (const c of clients) {
    try { c.close(); } catch (_) { /* already closed */ }
  }
  clients.clear();
  for (const proc of spawned) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
  spawned.clear();
}

// The safety net for a file that forgot: once the file's tests and hooks
// are done, whatever is left is cleaned up. The timer does not keep the
// process alive; it fires only if something else still does, and late
// enough that the file's own after hooks (graceful stops) have finished.
after(() => { setTimeout(cleanup, 20000).unref(); });

// When the runner gives up on a file (its --test-timeout), it kills the
// file's process with SIGTERM: no hook runs then, and the parleys it
// started would live on, orphaned. They go with it.
process.once('SIGTERM', () => {
  cleanup();
  process.exit(143);
});

// PARLEY_TEST_PG (a base URI, tests/pg.sh start prints it): every parley
// the tests start keeps its store on that PostgreSQL, in a database of its
// own named from its data directory (a restart on the same directory finds
// its data again), created on first use.
const PG = process.env.PARLEY_TEST_PG || null;

// For a test about LMDB itself (the map, the disk, the data directory's
// lock, backup): its options skip it on PostgreSQL, saying why.
function lmdbOnly(why) {
  return PG ? { skip: `LMDB only (PARLEY_TEST_PG is set): ${why}` } : {};
}

// The PostgreSQL URI for a parley whose data directory is `dataDir` (null:
// a new database each time), its database created if missing.
function pgStore(dataDir) {
  let key = crypto.randomUUID();
  if (dataDir) {
    try { key = fs.realpathSync.native(dataDir); } catch (_) { key = path.resolve(dataDir); }
  }
  const db = 'parley_' + crypto.createHash('sha256').update(key).digest('hex').slice(0, 24);
  const psql = (sql) => execFileSync('psql', [PG, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (psql(`SELECT 1 FROM pg_database WHERE datname = '${db}'`).trim() !== '1') {
    try {
      psql(`CREATE DATABASE ${db}`);
    } catch (e) {
      // Another test process created it in between: that is as good.
      if (!/already exists/.test(String(e.stderr))) throw e;
    }
  }
  return PG.replace(/^(\w+:\/\/[^/]*\/)[^?]*/, `$1${db}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Spawns parley with the default scripts plus the testkit plugin (unless
// opts.env overrides) and does not wait for it: { port, url, proc, dataDir,
// exited, logs() }. opts: port, dataDir (a new temp folder by default;
// null leaves PARLEY_DATA_DIR unset), cwd (the repository), env (with
// PARLEY_TEST_PG, PARLEY_STORE: '' there keeps this one on LMDB), args, binary
// (another parley binary: an installed one), wrap
// (a command line that runs parley, e.g. ['strace', '-f', ...]: proc is
// then the wrapper's; parley is its child, see fsync.test.js).
async function spawnParley(opts = {}) {
  const port = opts.port || await freePort();
  const dataDir = opts.dataDir === undefined
    ? fs.mkdtempSync(path.join(os.tmpdir(), 'parley-test-')) : opts.dataDir;
  const env = {
    PATH: process.env.PATH,
    PORT: String(port),
    ...(dataDir !== null ? { PARLEY_DATA_DIR: dataDir } : {}),
    // A test that names its directory in opts.env (to restart on it) names
    // its database so too.
    ...(PG ? { PARLEY_STORE: pgStore((opts.env && opts.env.PARLEY_DATA_DIR) || dataDir) } : {}),
    PARLEY_SCRIPTS: path.join(ROOT, 'scripts'),
    PARLEY_PLUGIN_PATH: path.join(ROOT, 'tests', 'plugins') + ';' + path.join(ROOT, 'plugins'),
    PARLEY_PLUGINS: 'testkit',
    PARLEY_LOG: 'info',
    // Connection state recovery adds an offset to every event a Socket.IO
    // client gets (its last argument): the tests that read exact frames and
    // argument lists were written without it. recovery.test.js turns it on;
    // PARLEY_TEST_RECOVERY_WINDOW runs every suite with it (to look for
    // crashes and sanitizer reports, not for their assertions).
    PARLEY_RECOVERY_WINDOW: process.env.PARLEY_TEST_RECOVERY_WINDOW || '0',
    ...(process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS } : {}),
    ...(process.env.UBSAN_OPTIONS ? { UBSAN_OPTIONS: process.env.UBSAN_OPTIONS } : {}),
    ...(opts.env || {}),
  };
  const [cmd, ...argv] = [...(opts.wrap || []), opts.binary || BINARY, ...(opts.args || [])];
  const proc = spawn(cmd, argv, { cwd: opts.cwd || ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.add(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return { port, url: `http://127.0.0.1:${port}`, proc, dataDir, exited, logs: () => out };
}

// Starts parley (spawnParley's options) and resolves once /healthz answers
// 200 to { port, url, proc, dataDir, exited, logs(), stop(), kill() }.
async function startParley(opts = {}) {
  const { port, url, proc, dataDir, exited, logs } = await spawnParley(opts);
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`parley exited at start (${proc.exitCode}):\n${logs()}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch (_) { /* not listening yet */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`parley did not start:\n${logs()}`); }
    await sleep(25);
  }
  return {
    port, url, proc, dataDir, exited, logs,
    // Stops with SIGTERM and resolves to the exit status; a crash fails loudly.
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const st = await exited;
      const out = logs();
      if (st.signal && st.signal !== 'SIGTERM') throw new Error(`parley died by ${st.signal}:\n${out}`);
      if (/ERROR: (Address|Undefined|Leak)Sanitizer|runtime error:/.test(out)) {
        throw new Error(`sanitizer report:\n${out}`);
      }
      return st;
    },
    kill(signal = 'SIGKILL') { proc.kill(signal); return exited; },
  };
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// The value of one series of /metrics (`name{labels}` as printed), or null.
async function metric(srv, series) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : null;
}

// Calls `probe` until `ok(value)` and resolves with that value: a wait for a
// state parley reaches, bounded by `ms`, instead of a sleep that guesses.
async function waitFor(probe, ok, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(v)})`);
    await sleep(10);
  }
}

// parley_script_loads_total of a running parley: { ok, refused } (the
// first load counts: a new parley shows { ok: 1, refused: 0 }).
async function scriptLoads(srv) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const n = (result) => {
    const m = new RegExp(`^parley_script_loads_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(text);
    if (!m) throw new Error(`/metrics has no parley_script_loads_total{result="${result}"}`);
    return Number(m[1]);
  };
  return { ok: n('ok'), refused: n('refused') };
}

// Resolves once parley has decided on a load of the scripts after `before`
// (what scriptLoads said then): 'ok' (the new version took over: it answers
// from now on) or 'refused' (the running version stays).
async function loaded(srv, before, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await scriptLoads(srv);
    if (now.ok > before.ok) return 'ok';
    if (now.refused > before.refused) return 'refused';
    if (Date.now() > deadline) throw new Error(`no load of the scripts within ${timeoutMs} ms:\n${srv.logs ? srv.logs() : ''}`);
    await sleep(10);
  }
}

// Sends SIGHUP and resolves with parley's decision: 'ok' or 'refused'.
async function reload(srv) {
  const before = await scriptLoads(srv);
  srv.proc.kill('SIGHUP');
  return loaded(srv, before);
}

// A socket.io-client socket that is not yet connected; tests call connect().
function sioClient(srv, nsp = '/messages', opts = {}) {
  const s = io(`${srv.url}${nsp}`, { autoConnect: false, reconnection: false, forceNew: true, ...opts });
  clients.add(s);
  return s;
}

// Connects and resolves once 'connect' fired (rejects on connect_error).
function connected(socket, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('connect timed out')), timeoutMs);
    socket.once('connect', () => { clearTimeout(t); resolve(socket); });
    socket.once('connect_error', (e) => { clearTimeout(t); reject(e); });
    if (!socket.connected && !socket.active) socket.connect();
  });
}

// Resolves with the next `event` payload on an EventEmitter-like socket.
function once(emitter, event, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...args) => {
      clearTimeout(t);
      // Trailing undefined arguments (socket.io's 'disconnect' passes two) do not count.
      while (args.length > 1 && args[args.length - 1] === undefined) args.pop();
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}

// Resolves true if `event` does NOT arrive within ms (for "nobody else got it").
function silent(emitter, event, ms = 300) {
  return new Promise((resolve) => {
    const on = () => { clearTimeout(t); resolve(false); };
    const t = setTimeout(() => { emitter.off(event, on); resolve(true); }, ms);
    emitter.once(event, on);
  });
}

// Queues a WebSocket's incoming frames, each turned by `parse`, and adds:
// ws.next(match, timeoutMs) (the first queued or future frame that matches),
// ws.opened, ws.closed ({code, reason}), ws.frames, and ws.clientErrors (the
// ws library's own errors: a frame the server sent that it refused).
// onFrame(frame) sees every frame first (to answer pings, say).
function frameQueue(ws, parse, onFrame = () => {}) {
  ws.frames = [];
  ws.waiters = [];
  ws.clientErrors = [];
  ws.on('error', (e) => ws.clientErrors.push(e.message));
  ws.on('message', (data, isBinary) => {
    const frame = isBinary ? data : parse(String(data));
    onFrame(frame);
    const w = ws.waiters.findIndex((x) => x.match(frame));
    if (w >= 0) ws.waiters.splice(w, 1)[0].resolve(frame);
    else ws.frames.push(frame);
  });
  ws.next = (match = () => true, timeoutMs = 3000) => {
    const i = ws.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(ws.frames.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const entry = { match, resolve };
      ws.waiters.push(entry);
      setTimeout(() => {
        const k = ws.waiters.indexOf(entry);
        if (k >= 0) {
          ws.waiters.splice(k, 1);
          reject(new Error(`no matching frame within ${timeoutMs} ms; queued: ${JSON.stringify(ws.frames.map(String))}`));
        }
      }, timeoutMs);
    });
  };
  ws.opened = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.opened.catch(() => {});
  ws.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
  return ws;
}

// A plain WebSocket to the /messages endpoint; frames are parsed JSON.
function plainClient(srv, query = '', path = '/messages') {
  const ws = frameQueue(new WebSocket(`ws://127.0.0.1:${srv.port}${path}${query ? '?' + query : ''}`), JSON.parse);
  clients.add(ws);
  ws.once('close', () => clients.delete(ws));
  ws.sendJson = (obj) => ws.send(JSON.stringify(obj));
  return ws;
}

// A raw Engine.IO WebSocket: text frames as strings, binary as Buffers.
// It answers the server's pings unless autoPong is false; ws.pings counts them.
function rawEngineWs(url, { autoPong = true, headers, origin } = {}) {
  const ws = new WebSocket(url, { headers, origin });
  clients.add(ws);
  ws.once('close', () => clients.delete(ws));
  ws.pings = 0;
  return frameQueue(ws, (f) => f, (f) => {
    if (f !== '2') return;
    ws.pings++;
    if (autoPong && ws.readyState === WebSocket.OPEN) ws.send('3');
  });
}

// Raw Engine.IO over HTTP long-polling, for protocol-level tests.
async function pollHandshake(srv, extra = '') {
  const r = await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling${extra}`);
  const body = await r.text();
  if (r.status !== 200 || body[0] !== '0') throw new Error(`handshake failed: ${r.status} ${body}`);
  return JSON.parse(body.slice(1));
}

// Makes the socket.io-client socket `s` record every event it gets, in
// order, with its arguments as given (s.log: { event, args }), for
// untilLogged. Returns `s`.
function recordEvents(s) {
  s.log = [];
  s.waiters = [];
  s.onAny((event, ...args) => {
    s.log.push({ event, args });
    for (const w of [...s.waiters]) w();
  });
  return s;
}

// Resolves with the index in s.log (recordEvents) of the first entry from
// `from` on that `match` accepts, once it is there.
function untilLogged(s, match, from = 0, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const look = () => {
      const i = s.log.findIndex((e, k) => k >= from && match(e));
      if (i < 0) return false;
      s.waiters.splice(s.waiters.indexOf(look), 1);
      clearTimeout(t);
      resolve(i);
      return true;
    };
    const t = setTimeout(() => {
      s.waiters.splice(s.waiters.indexOf(look), 1);
      reject(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(s.log.slice(from).map((e) => e.event))}`));
    }, timeoutMs);
    s.waiters.push(look);
    look();
  });
}

// A new database of its own on the test PostgreSQL (PARLEY_TEST_PG), named
// `<prefix>_<pid>_<n>`: { name, uri }.
let databases = 0;
function newPgDatabase(prefix) {
  const name = `${prefix}_${process.pid}_${++databases}`;
  execFileSync('psql', [PG, '-qc', `CREATE DATABASE ${name}`], { stdio: 'ignore' });
  return { name, uri: PG.replace(/^(\w+:\/\/[^/]*\/)[^?]*/, `$1${name}`) };
}

// A socket.io-client socket on /messages as `userId` (the websocket
// transport), connected.
async function messagesClient(srv, userId) {
  const c = sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] });
  await connected(c);
  return c;
}

// Every message of a conversation, paging messages:sync (500 a page)
// through the Socket.IO client `c`.
async function syncAll(c, conversationId) {
  const all = [];
  for (;;) {
    const after = all.length ? all[all.length - 1].messageId : undefined;
    const page = await c.timeout(10000).emitWithAck('messages:sync',
      { conversationId, limit: 500, ...(after ? { after } : {}) });
    if (!Array.isArray(page.messages)) throw new Error(`messages:sync answered ${JSON.stringify(page)}`);
    all.push(...page.messages);
    if (!page.hasMore) return all;
  }
}

module.exports = {
  ROOT, BINARY, PG, lmdbOnly, pgStore, spawnParley, startParley, cleanup, sleep, metric, waitFor, scriptLoads, loaded, reload, sioClient, connected, once, silent, frameQueue, plainClient,
  rawEngineWs, pollHandshake, freePort, recordEvents, untilLogged, newPgDatabase, syncAll,
  messagesClient,
};
