// report.js - turns the raw result lines run.sh collects into the
// side-by-side table: the median over rounds for parley, the Socket.IO
// reference and the loadgen's ceiling, the ratio parley/reference, the
// issue's targets, and alerts for every run that lost, dropped or failed.
// Usage: node report.js RAW_FILE   (lines: SCEN=.. ROUND=.. SERVER=.. RC=.. ALIVE=.. RESULT k=v ...)
'use strict';

const fs = require('fs');

const raw = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.startsWith('SCEN='));
const runs = raw.map((line) => {
  const r = {};
  for (const kv of line.replace(' RESULT ', ' ').split(' ')) {
    const i = kv.indexOf('=');
    if (i > 0) r[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return r;
});

function pick(scen, server) {
  return runs.filter((r) => r.SCEN === scen && r.SERVER === server);
}

function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The median of a metric; f maps one run to a number.
function med(scen, server, f) {
  return median(pick(scen, server).filter((r) => r.mode).map(f));
}

const num = (k) => (r) => (r[k] === undefined ? NaN : Number(r[k]));

function fmt(x, digits = 0) {
  if (!Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

function ratio(a, b) {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '—';
  const q = a / b;
  return (q >= 10 ? q.toFixed(1) : q.toFixed(2)) + '×';
}

const rows = [];
function section(title) {
  rows.push({ section: title });
}
function row(label, scen, f, opts = {}) {
  const p = med(scen, 'parley', f);
  const s = med(scen, 'socketio', f);
  const c = opts.ceiling ? med(scen, 'ceiling', f) : NaN;
  const d = opts.digits || 0;
  let met = '';
  if (opts.target) met = opts.target(p, s);
  rows.push({
    label,
    parley: opts.na && opts.na(scen) ? 'n/a' : fmt(p, d),
    ref: fmt(s, d),
    ratio: opts.na && opts.na(scen) ? '—' : opts.noratio ? '' : ratio(p, s),
    ceiling: opts.ceiling ? fmt(c, d) : '',
    target: opts.targetText || '',
    met,
  });
}

const yes = (ok) => (ok === undefined ? '' : ok ? 'met' : 'NOT met');
const perConnUs = (r) => (1e6 * Number(r.connect_server_cpu_s)) / Number(r.connected);
const perDeliveryUs = (r) => {
  const d = Number(r.deliveries_per_s) * Number(r.duration_s);
  return d > 0 ? (1e6 * Number(r.server_cpu_s)) / d : NaN;
};
// CPU per acked send over the measured window: the server's over all its
// threads (parley's loop and its store writer; /proc/PID/stat sums them),
// or PostgreSQL's over all its processes (db_cpu_s, the postmaster and its
// children).
const perAckUs = (key) => (r) => {
  const a = Number(r.acks_per_s) * Number(r.duration_s);
  return a > 0 && Number(r[key]) >= 0 ? (1e6 * Number(r[key])) / a : NaN;
};
// One thread's CPU per ack (thread_cpu_s=parley:1.18,parley-store:0.65):
// parley's loop thread is "parley", its LMDB writer "parley-store".
const threadPerAckUs = (name) => (r) => {
  const t = (r.thread_cpu_s || '').split(',').find((x) => x.slice(0, x.lastIndexOf(':')) === name);
  const a = Number(r.acks_per_s) * Number(r.duration_s);
  return t && a > 0 ? (1e6 * Number(t.slice(t.lastIndexOf(':') + 1))) / a : NaN;
};
// The two rows of where a durable ack's CPU goes in parley, LMDB.
const threadRows = (scen) => {
  for (const [label, name] of [['  of which the loop thread (µs)', 'parley'],
    ['  of which the store writer thread (µs)', 'parley-store']]) {
    const p = med(scen, 'parley', threadPerAckUs(name));
    rows.push({ label, parley: fmt(p, 2), ref: '', ratio: '', ceiling: '', target: '', met: '' });
  }
};
const has = (scen) => runs.some((r) => r.SCEN === scen);
const desc = (scen) => {
  const r = runs.find((x) => x.SCEN === scen && x.mode);
  if (!r) return '';
  let d = `N=${r.clients}, rooms of ${r.room}`;
  if (r.users && r.users !== r.clients) d += `, ${r.users} user id(s)`;
  if (r.mode !== 'idle') d += `, ${r.senders} senders`;
  if (r.mode === 'latency') d += ` at ${r.rate} sends/s total, ${r.duration_s} s after ${r.warmup_s} s warm-up`;
  else if (r.mode !== 'idle') d += ` × window ${r.window}, ${r.duration_s} s`;
  return d;
};
// A server whose every message:send ack is an error has no message:send.
const sendNA = (scen) => med(scen, 'parley', num('acked')) === 0 && med(scen, 'parley', num('ack_err')) > 0;

if (has('idle')) {
  section(`idle: connect, join, hold (${desc('idle')})`);
  row('connect rate (Socket.IO connects/s)', 'idle', num('connect_rate'), {
    targetText: '≥ 5× ref', target: (p, s) => yes(p >= 5 * s) });
  row('server CPU per connect (µs)', 'idle', perConnUs);
  row('memory per idle connection (B, RSS)', 'idle', num('mem_per_conn_b'), {
    targetText: '≤ ref/5 and ≤ 3 KB', target: (p, s) => yes(p <= s / 5 && p <= 3072) });
  row('join phase (s, all conversation:join acked)', 'idle', num('join_s'), { digits: 2 });
}
if (has('fanout')) {
  section(`fan-out at maximum throughput (${desc('fanout')})`);
  row('bench:send acked/s', 'fanout', num('acks_per_s'), { ceiling: true });
  row('deliveries/s (bench:recv)', 'fanout', num('deliveries_per_s'), { ceiling: true,
    targetText: '≥ 10× ref', target: (p, s) => yes(p >= 10 * s) });
  row('lost deliveries (after drain)', 'fanout', num('lost'), { ceiling: true, noratio: true });
  row('latency p50 under this load (µs)', 'fanout', num('lat_p50_us'), { ceiling: true });
  row('latency p99 under this load (µs)', 'fanout', num('lat_p99_us'), { ceiling: true });
  row('server CPU (% of one core)', 'fanout', num('server_cpu_pct'), { ceiling: true });
  row('server CPU per delivery (µs)', 'fanout', perDeliveryUs, { ceiling: true, digits: 2 });
  row('loadgen CPU (% of one core)', 'fanout', num('loadgen_cpu_pct'), { ceiling: true, noratio: true });
}
if (has('mpfanout')) {
  section(`fan-out at maximum throughput, every client on socket.io-msgpack-parser (${desc('mpfanout')})`);
  row('bench:send acked/s', 'mpfanout', num('acks_per_s'));
  row('deliveries/s (bench:recv)', 'mpfanout', num('deliveries_per_s'));
  row('lost deliveries (after drain)', 'mpfanout', num('lost'), { noratio: true });
  row('latency p50 under this load (µs)', 'mpfanout', num('lat_p50_us'));
  row('latency p99 under this load (µs)', 'mpfanout', num('lat_p99_us'));
  row('server CPU (% of one core)', 'mpfanout', num('server_cpu_pct'));
  row('server CPU per delivery (µs)', 'mpfanout', perDeliveryUs, { digits: 2 });
  row('loadgen CPU (% of one core)', 'mpfanout', num('loadgen_cpu_pct'), { noratio: true });
}
// Connection state recovery: parley with it (the default) against parley
// without it (PARLEY_RECOVERY_WINDOW=0), in the same rounds.
function onOffRow(label, on, off, f, opts = {}) {
  const a = med(on, 'parley', f);
  const b = med(off, 'parley', f);
  rows.push({ label, parley: fmt(a, opts.digits || 0), ref: fmt(b, opts.digits || 0), ratio: ratio(a, b),
    ceiling: '', target: opts.targetText || '', met: opts.target ? opts.target(a, b) : '' });
}
if (has('fanoutoff') || has('idleoff')) {
  section('connection state recovery: parley with it (default, in the parley column) against parley ' +
    'without it (PARLEY_RECOVERY_WINDOW=0, in the Socket.IO column); ratio = on / off');
  if (has('fanoutoff') && has('fanout')) {
    onOffRow('fan-out deliveries/s', 'fanout', 'fanoutoff', num('deliveries_per_s'));
    onOffRow('fan-out server CPU per delivery (µs)', 'fanout', 'fanoutoff', perDeliveryUs, {
      digits: 2, targetText: '≤ 1.10× off', target: (a, b) => yes(a <= 1.1 * b) });
    onOffRow('fan-out lost deliveries', 'fanout', 'fanoutoff', num('lost'));
  }
  if (has('idleoff') && has('idle')) {
    onOffRow('memory per idle connection (B, RSS)', 'idle', 'idleoff', num('mem_per_conn_b'));
  }
}
// permessage-deflate: the fan-out load with 2 KB messages, compressed
// (PARLEY_WS_COMPRESSION=1, the reference's perMessageDeflate) and not.
for (const scen of ['deflate', 'deflateoff']) {
  if (!has(scen)) continue;
  section(`fan-out with 2 KB messages, permessage-deflate ${scen === 'deflate' ? 'on' : 'off'} (${desc(scen)})`);
  row('deliveries/s (bench:recv)', scen, num('deliveries_per_s'));
  row('lost deliveries (after drain)', scen, num('lost'), { noratio: true });
  row('server CPU (% of one core)', scen, num('server_cpu_pct'));
  row('server CPU per delivery (µs)', scen, perDeliveryUs, { digits: 2 });
  row('loadgen CPU (% of one core)', scen, num('loadgen_cpu_pct'), { noratio: true });
}

function latencyRows(scen) {
  row('deliveries/s', scen, num('deliveries_per_s'), { ceiling: true });
  row('p50 (µs)', scen, num('lat_p50_us'), { ceiling: true });
  row('p90 (µs)', scen, num('lat_p90_us'), { ceiling: true });
  row('p99 (µs)', scen, num('lat_p99_us'), { ceiling: true,
    targetText: '≤ 1,000 µs', target: (p) => yes(p <= 1000) });
  row('p99.9 (µs)', scen, num('lat_p999_us'), { ceiling: true });
  row('max (µs)', scen, num('lat_max_us'), { ceiling: true });
  row('lost deliveries', scen, num('lost'), { ceiling: true, noratio: true });
  row('server CPU (% of one core)', scen, num('server_cpu_pct'), { ceiling: true });
  row('loadgen CPU (% of one core)', scen, num('loadgen_cpu_pct'), { ceiling: true, noratio: true });
}
if (has('latency')) {
  section(`latency at a fixed rate (${desc('latency')})`);
  latencyRows('latency');
}
if (has('mplatency')) {
  section(`latency at a fixed rate, every client on socket.io-msgpack-parser (${desc('mplatency')})`);
  latencyRows('mplatency');
}
if (has('awake')) {
  section(`the same, both cores kept out of idle by a SCHED_IDLE busy loop (${desc('awake')}): what the servers add, without the vCPUs' wake-ups`);
  latencyRows('awake');
}
if (has('typing')) {
  section(`typing:start relay (${desc('typing')})`);
  row('typing:start acked/s', 'typing', num('acks_per_s'), { ceiling: true });
  row('relays/s', 'typing', num('deliveries_per_s'), { ceiling: true });
  row('lost relays', 'typing', num('lost'), { ceiling: true, noratio: true });
  row('server CPU (% of one core)', 'typing', num('server_cpu_pct'), { ceiling: true });
  row('server CPU per relay (µs)', 'typing', perDeliveryUs, { ceiling: true, digits: 2 });
}
if (has('send')) {
  section(`message:send with ack (${desc('send')})`);
  row('acks/s (status "sent")', 'send', num('acks_per_s'), { ceiling: true, na: sendNA,
    targetText: '≥ 100,000/s', target: (p) => yes(p >= 100000) });
  row('error acks (whole run)', 'send', num('ack_err'), { ceiling: true, noratio: true });
  row('message:received lost', 'send', num('lost'), { ceiling: true, noratio: true, na: sendNA });
  row('server CPU (% of one core)', 'send', num('server_cpu_pct'), { ceiling: true });
  row('server CPU per ack (µs, all threads; parley durable)', 'send', perAckUs('server_cpu_s'), { digits: 2 });
  threadRows('send');
}
if (has('sendroom')) {
  section(`message:send into rooms of 10: fan-out with storage on (${desc('sendroom')}; parley stores every message durably, Socket.IO keeps nothing)`);
  row('acks/s (status "sent")', 'sendroom', num('acks_per_s'), { ceiling: true, na: sendNA });
  row('message:received deliveries/s', 'sendroom', num('deliveries_per_s'), { ceiling: true, na: sendNA });
  row('message:received lost', 'sendroom', num('lost'), { ceiling: true, noratio: true, na: sendNA });
  row('server CPU (% of one core)', 'sendroom', num('server_cpu_pct'), { ceiling: true });
  row('server CPU per ack (µs, all threads; parley durable)', 'sendroom', perAckUs('server_cpu_s'), { digits: 2 });
  threadRows('sendroom');
}
if (has('sendsplit')) {
  section(`the send load again with parley's store writer thread on the loadgen's core (${desc('sendsplit')}): outside the one-core rule, parley only; the writer shares that core with the loadgen`);
  row('acks/s (status "sent")', 'sendsplit', num('acks_per_s'), { na: sendNA });
  const split = med('sendsplit', 'parley', num('acks_per_s'));
  const one = med('send', 'parley', num('acks_per_s'));
  if (Number.isFinite(one)) {
    rows.push({ label: 'acks/s against the one-core send above', parley: ratio(split, one), ref: '',
      ratio: '', ceiling: '', target: '', met: '' });
  }
  row('message:received lost', 'sendsplit', num('lost'), { noratio: true, na: sendNA });
  row('server CPU (% of one core, both threads)', 'sendsplit', num('server_cpu_pct'));
  row('server CPU per durable ack (µs, both threads)', 'sendsplit', perAckUs('server_cpu_s'), { digits: 2 });
  threadRows('sendsplit');
}
// parley with its store on PostgreSQL (on the loadgen's core), against the
// reference's in-memory figures of the same load in the same run: the
// Socket.IO column is the send (or sendroom) scenario's.
function pgRow(label, scen, refScen, f, opts = {}) {
  const p = med(scen, 'parley', f);
  const s = opts.noref ? NaN : med(refScen, 'socketio', f);
  const d = opts.digits || 0;
  rows.push({ label, parley: sendNA(scen) ? 'n/a' : fmt(p, d), ref: opts.noref ? '' : fmt(s, d),
    ratio: opts.noref || opts.noratio || sendNA(scen) ? '' : ratio(p, s), ceiling: '',
    target: opts.targetText || '', met: opts.target ? opts.target(p, s) : '' });
}
const pgRows = (scen, refScen, fanout) => {
  pgRow('acks/s (status "sent")', scen, refScen, num('acks_per_s'), { targetText: '≥ ref',
    target: (p, s) => (Number.isFinite(s) ? yes(p >= s) : '') });
  if (fanout) pgRow('message:received deliveries/s', scen, refScen, num('deliveries_per_s'));
  pgRow('error acks (whole run)', scen, refScen, num('ack_err'), { noratio: true });
  pgRow('message:received lost', scen, refScen, num('lost'), { noratio: true });
  pgRow('server CPU (% of one core)', scen, refScen, num('server_cpu_pct'));
  pgRow('server CPU per ack (µs, all threads; parley durable)', scen, refScen, perAckUs('server_cpu_s'), { digits: 2 });
  pgRow('PostgreSQL CPU (% of one core, all its processes)', scen, refScen,
    (r) => (Number(r.db_cpu_s) >= 0 ? (100 * Number(r.db_cpu_s)) / Number(r.duration_s) : NaN), { noref: true });
  pgRow('PostgreSQL CPU per ack (µs, all its processes)', scen, refScen, perAckUs('db_cpu_s'), { digits: 2, noref: true });
};
if (has('sendpg')) {
  section(`message:send with ack, parley's store on PostgreSQL (${desc('sendpg')}; PostgreSQL on the loadgen's core; Socket.IO column: the reference's in-memory send above, same run)`);
  pgRows('sendpg', 'send', false);
}
if (has('sendroompg')) {
  section(`message:send into rooms of 10, parley's store on PostgreSQL (${desc('sendroompg')}; PostgreSQL on the loadgen's core; Socket.IO column: the reference's in-memory sendroom above, same run)`);
  pgRows('sendroompg', 'sendroom', true);
}
if (has('presence')) {
  section(`presence broadcast: distinct users, user:online to the whole namespace (${desc('presence')}; reference with REF_PRESENCE=1; one round)`);
  row('first connect → last join ack (s)', 'presence', num('ready_s'), { digits: 2 });
  row('user:online events delivered', 'presence', num('online_events'), { noratio: true });
  row('connects/s (CONNECT acks)', 'presence', num('connect_rate'));
  row('server CPU while connecting (s)', 'presence', num('connect_server_cpu_s'), { digits: 2 });
  row('clients dropped by the server', 'presence', num('closed_later'), { noratio: true });
}

// The table.
const head = { label: 'measure', parley: 'parley', ref: 'Socket.IO', ratio: 'parley/ref', ceiling: 'loadgen ceiling', target: 'target', met: '' };
const cols = ['label', 'parley', 'ref', 'ratio', 'ceiling', 'target', 'met'];
const width = {};
for (const c of cols) width[c] = Math.max(head[c].length, ...rows.filter((r) => !r.section).map((r) => String(r[c]).length));
const line = (r) => cols.map((c, i) => (i === 0 ? String(r[c]).padEnd(width[c]) : String(r[c]).padStart(width[c]))).join('  ').trimEnd();
const out = [line(head)];
for (const r of rows) out.push(r.section ? '\n' + r.section : line(r));
const rounds = Math.max(0, ...runs.map((r) => Number(r.ROUND)));
out.push('');
out.push(`Medians over ${rounds} round(s) (presence: one round). Ratio = parley / Socket.IO. ` +
  '"loadgen ceiling" = the same loadgen against tests/bench/ceiling, a minimal epoll server: ' +
  'the most the loadgen itself can drive and absorb.');

// Alerts: every run that lost, dropped, failed or crashed.
const alerts = [];
for (const r of runs) {
  const what = [];
  if (r.ALIVE === '0') what.push('SERVER PROCESS DIED');
  if (!r.mode) what.push(`no result (loadgen exit ${r.RC})`);
  if (Number(r.failed) > 0) what.push(`${r.failed} clients never connected`);
  if (Number(r.closed_later) > 0) what.push(`${r.closed_later} clients dropped after connecting`);
  if (Number(r.lost) !== 0 && r.lost !== undefined) what.push(`lost ${r.lost} of ${r.expected} deliveries`);
  if (Number(r.unacked) > 0) what.push(`${r.unacked} sends never acked`);
  if (Number(r.ack_err) > 0) what.push(`${r.ack_err} error acks`);
  if (what.length) alerts.push(`  ${r.SCEN} round ${r.ROUND} ${r.SERVER}: ${what.join('; ')}`);
}
if (alerts.length) {
  out.push('');
  out.push('Alerts:');
  out.push(...alerts);
}
console.log(out.join('\n'));
