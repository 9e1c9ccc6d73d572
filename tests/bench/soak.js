// soak.js - churn against a running parley for a long while, sampling its
// memory and open files: does anything leak? A pool of clients of every
// kind (socket.io over websocket and over polling, plain WebSocket) joins
// conversations and sends durable messages, typing and read receipts, while
// a slice of the pool is replaced every second - half closing politely, half
// dropping dead - and one malformed frame a second is thrown in. Each sample
// prints the server's resident memory (anonymous and file-backed: LMDB's
// pages are file-backed and grow with the data, by design), its open file
// descriptors, its connections and its Lua heap. At the end every client
// leaves and the server must come back to where it started: no sockets, the
// same descriptors.
//
//   node tests/bench/soak.js --port P --pid PID [--seconds 600] [--pool 300]
//        [--churn 30] [--sample 30] [--rate 1]
// (tests/bench/soak.sh starts parley and runs this.)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const modules = path.join(__dirname, '..', 'node_modules');
const { io } = require(path.join(modules, 'socket.io-client'));
const WebSocket = require(path.join(modules, 'ws'));

function args() {
  const a = { seconds: 600, pool: 300, churn: 30, sample: 30, rate: 1, room: 10 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a) && k !== 'port' && k !== 'pid') throw new Error(`soak.js: unknown option ${v[i]}`);
    a[k] = Number(v[i + 1]);
  }
  if (!a.port || !a.pid) throw new Error('soak.js: --port and --pid are required');
  return a;
}

const opt = args();
const base = `http://127.0.0.1:${opt.port}`;
const stats = {
  connects: 0, closes: 0, drops: 0, sent: 0, acked: 0, ackErrors: 0, unanswered: 0,
  received: 0, badSent: 0, badAnswered: 0, connectErrors: 0,
};
const pool = new Set();
let serial = 0;

// ---- clients ----

function pick(list) { return list[Math.floor(Math.random() * list.length)]; }

// One client: { kind, userId, conv, send(), typing(), bad(), close(), drop() }.
function makeClient() {
  // As many users as the pool holds, each always in the same conversation
  // of `room` members: a chat app's steady state (a user reconnecting is
  // the same member of the same conversations), not ever-growing groups.
  const n = serial++;
  const user = Math.floor(Math.random() * opt.pool);
  const userId = `soak-u${user}`;
  const conv = `soak-c${Math.floor(user / opt.room)}`;
  const roll = Math.random();
  const c = roll < 0.7 ? sioClient(userId, ['websocket'])
    : roll < 0.85 ? sioClient(userId, ['polling']) : plainClient(userId);
  c.userId = userId;
  c.conv = conv;
  c.pending = new Map(); // clientMessageId -> sent at
  c.seq = 0;
  pool.add(c);
  stats.connects++;
  return c;
}

function sioClient(userId, transports) {
  const s = io(`${base}/messages`, {
    transports, query: { userId }, reconnection: false, forceNew: true, timeout: 10000,
  });
  const c = { kind: transports[0] === 'polling' ? 'polling' : 'websocket', ready: false };
  s.on('connect', () => {
    s.emit('conversation:join', { conversationId: c.conv }, () => { c.ready = true; });
  });
  s.on('connect_error', () => { stats.connectErrors++; retire(c); });
  s.on('message:received', () => { stats.received++; });
  s.on('disconnect', () => retire(c));
  c.emit = (ev, data, cb) => s.emit(ev, data, cb);
  c.close = () => s.disconnect();
  c.drop = () => {
    // A dead peer: the transport goes without a word. Websocket: the TCP
    // connection is destroyed, no close frame. Polling: the client simply
    // stops polling (no close packet); the server's heartbeat reaps it.
    const engine = s.io.engine;
    s.removeAllListeners();
    engine.removeAllListeners();
    engine.clearTimeoutFn(engine._pingTimeoutTimer);
    const t = engine.transport;
    t.removeAllListeners();
    if (t.ws) {
      t.ws._socket?.destroy();
    } else {
      t.doClose = () => {};
      t.write = () => {};
      t.pause(() => {});
    }
    engine.readyState = 'closed';
    retire(c);
  };
  c.bad = null;
  return c;
}

function plainClient(userId) {
  const ws = new WebSocket(`ws://127.0.0.1:${opt.port}/messages?userId=${userId}`);
  const c = { kind: 'plain', ready: false, acks: new Map(), next: 1 };
  ws.on('open', () => {
    c.emit('conversation:join', { conversationId: c.conv }, () => { c.ready = true; });
  });
  ws.on('message', (raw) => {
    let f;
    try { f = JSON.parse(raw); } catch (_) { return; }
    if (f.event === 'message:received') stats.received++;
    if (f.event === 'error' && f.data && f.data.statusCode === 400) stats.badAnswered++;
    if (f.event === undefined && c.acks.has(f.ack)) {
      const cb = c.acks.get(f.ack);
      c.acks.delete(f.ack);
      cb(f.data);
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => retire(c));
  c.emit = (event, data, cb) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const frame = { event, data };
    if (cb) { frame.ack = c.next++; c.acks.set(frame.ack, cb); }
    ws.send(JSON.stringify(frame));
  };
  c.close = () => ws.close(1000);
  c.drop = () => { ws._socket?.destroy(); ws.removeAllListeners(); ws.on('error', () => {}); retire(c); };
  c.bad = () => { if (ws.readyState === WebSocket.OPEN) { ws.send('{"event":'); stats.badSent++; } };
  return c;
}

function retire(c) {
  if (!pool.delete(c)) return;
  stats.unanswered += c.pending.size;
}

// ---- the load ----

function sendMessage(c) {
  const id = `${c.userId}-${serial}-${c.seq++}`;
  c.pending.set(id, Date.now());
  stats.sent++;
  c.emit('message:send', { conversationId: c.conv, clientMessageId: id, type: 'text', content: `soak ${id}` }, (r) => {
    c.pending.delete(id);
    if (r && r.messageId) stats.acked++;
    else stats.ackErrors++;
  });
}

function tick() {
  // Each ready client sends about `rate` messages a second (10 ticks).
  for (const c of pool) {
    if (!c.ready) continue;
    const r = Math.random();
    if (r < opt.rate / 10) sendMessage(c);
    else if (r < opt.rate / 10 + 0.02) c.emit('typing:start', { conversationId: c.conv, isTyping: true });
    else if (r < opt.rate / 10 + 0.03) c.emit('conversation:read', { conversationId: c.conv });
  }
}

function churn() {
  const live = [...pool];
  for (let i = 0; i < opt.churn && live.length; i++) {
    const c = live.splice(Math.floor(Math.random() * live.length), 1)[0];
    if (Math.random() < 0.5) { stats.closes++; c.close(); } else { stats.drops++; c.drop(); }
  }
  while (pool.size < opt.pool) makeClient();
  const plains = [...pool].filter((c) => c.kind === 'plain' && c.ready);
  if (plains.length) pick(plains).bad();
}

// ---- sampling ----

function procStatus(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) || [0, 0])[1]);
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

async function sample(t) {
  const m = await (await fetch(`${base}/metrics`)).text();
  const gauge = (re) => m.split('\n').filter((l) => re.test(l))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const p = procStatus(opt.pid);
  return {
    t, ...p,
    fds: fs.readdirSync(`/proc/${opt.pid}/fd`).length,
    conns: gauge(/^parley_connections\{/),
    sockets: gauge(/^parley_sockets /),
    lua: gauge(/^parley_lua_heap_bytes /),
  };
}

function row(s) {
  const mb = (kb) => (kb / 1024).toFixed(1);
  console.log([
    String(s.t).padStart(5), mb(s.anon).padStart(9), mb(s.file).padStart(9), String(s.fds).padStart(6),
    String(s.conns).padStart(6), String(s.sockets).padStart(8), (s.lua / 1048576).toFixed(2).padStart(8),
    String(stats.connects).padStart(9), String(stats.acked).padStart(9),
  ].join(' '));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  console.log(`soak: ${opt.seconds} s, pool ${opt.pool} (70% socket.io websocket, 15% polling, 15% plain ws), ` +
    `${opt.churn} replaced/s (half dropped dead), ~${opt.rate} message:send/s per client, rooms of ~${opt.room}`);
  console.log('    t  anon MB   file MB    fds  conns  sockets   lua MB  connects     acked');
  const idle = await sample(0);
  row(idle);
  const samples = [];
  const ticker = setInterval(tick, 100);
  const churner = setInterval(churn, 1000);
  while (pool.size < opt.pool) makeClient();
  const start = Date.now();
  for (let t = opt.sample; t <= opt.seconds; t += opt.sample) {
    await sleep(start + t * 1000 - Date.now());
    const s = await sample(t);
    samples.push(s);
    row(s);
  }
  clearInterval(ticker);
  clearInterval(churner);
  await sleep(3000); // acks in flight land
  for (const c of [...pool]) c.close();
  // Dropped polling sessions are reaped by the heartbeat (soak.sh sets a
  // short one); wait until the server is back to idle, or give up.
  let end;
  for (let i = 0; i < 40; i++) {
    await sleep(1000);
    end = await sample(opt.seconds);
    if (end.sockets === 0 && end.conns === 0 && end.fds <= idle.fds) break;
  }
  console.log('after every client left:');
  row(end);

  const warm = samples.find((s) => s.t >= Math.min(120, opt.seconds / 2)) || samples[0];
  const last = samples[samples.length - 1];
  const minutes = (last.t - warm.t) / 60 || 1;
  console.log(`RESULT seconds=${opt.seconds} connects=${stats.connects} closes=${stats.closes} drops=${stats.drops} ` +
    `sent=${stats.sent} acked=${stats.acked} ack_errors=${stats.ackErrors} unanswered=${stats.unanswered} ` +
    `received=${stats.received} bad_sent=${stats.badSent} bad_answered=${stats.badAnswered} ` +
    `connect_errors=${stats.connectErrors} ` +
    `anon_kb_warm=${warm.anon} anon_kb_last=${last.anon} anon_kb_per_min=${((last.anon - warm.anon) / minutes).toFixed(0)} ` +
    `fds_idle=${idle.fds} fds_end=${end.fds} sockets_end=${end.sockets} conns_end=${end.conns} ` +
    `lua_warm=${warm.lua} lua_last=${last.lua}`);
  console.log(`anonymous memory from t=${warm.t} s to t=${last.t} s: ${warm.anon} -> ${last.anon} KB ` +
    `(${((last.anon - warm.anon) / minutes).toFixed(0)} KB/min); open files idle ${idle.fds}, ` +
    `after the soak ${end.fds}; sockets left ${end.sockets}`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
