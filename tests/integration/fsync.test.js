// fsync.test.js - "durable before acked, one fsync per group" (README,
// SPEC §4) at the level of system calls. kill -9 cannot tell a synced write
// from one left in the page cache (the cache outlives the process), so here
// parley runs under strace and the trace is read: every ack of a
// message:send, and every 201 of the HTTP API's send, leaves parley only
// after the data page that holds the message was written to data.mdb, an
// fdatasync/fsync/msync of data.mdb returned, and the meta page that makes
// the commit visible was written durably after it. With the store's write
// lock held by another process (build/lmdb_hold) no ack leaves at all, and
// sends that waited together share one sync.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const h = require('./harness');

const KEY = 'fsync-api-key';
const running = [];
const holders = [];
test.after(() => {
  for (const p of running) {
    if (p.pid) try { process.kill(p.pid, 'SIGKILL'); } catch (_) { /* gone */ }
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  }
  for (const proc of holders) if (proc.exitCode === null) proc.kill('SIGKILL');
});

// The system calls that write, sync, or send; signals are left out.
const TRACED = 'openat,open,creat,write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,sendmmsg,' +
  'fsync,fdatasync,msync,sync_file_range';

// parley under `strace -f`, serving: { url, port, pid (parley's own), trace(),
// stop() }. The trace is read from its file once parley has exited.
async function traced(dataDir) {
  const which = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  assert.equal(which.status, 0, 'strace is not installed (tests/deps.sh --test installs it)');
  const traceFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parley-strace-')), 'trace');
  const env = { PARLEY_API_KEY: KEY };
  // LeakSanitizer cannot run under ptrace; the other checks can.
  if (process.env.ASAN_OPTIONS) env.ASAN_OPTIONS = `${process.env.ASAN_OPTIONS}:detect_leaks=0`;
  const p = await h.spawnParley({
    dataDir, env,
    wrap: ['strace', '-f', '-qq', '-e', `trace=${TRACED}`, '-e', 'signal=none', '-s', '65536', '-o', traceFile],
  });
  running.push(p);
  const deadline = Date.now() + 20000;
  for (;;) {
    if (p.proc.exitCode !== null) throw new Error(`parley under strace exited at start:\n${p.logs()}`);
    try {
      if ((await fetch(`${p.url}/healthz`)).ok) break;
    } catch (_) { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`parley under strace did not start:\n${p.logs()}`);
    await h.sleep(25);
  }
  // strace's only child is parley (signals sent to strace would not reach it).
  p.pid = Number(fs.readFileSync(`/proc/${p.proc.pid}/task/${p.proc.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  assert.ok(p.pid > 0, 'no pid for parley under strace');
  p.stop = async () => {
    process.kill(p.pid, 'SIGTERM');
    const st = await p.exited;
    assert.deepEqual(st, { code: 0, signal: null }, `parley under strace: ${JSON.stringify(st)}\n${p.logs()}`);
    return parseTrace(fs.readFileSync(traceFile, 'utf8'));
  };
  return p;
}

// strace -f output as one event per system call: { name, fd, ret, text,
// entry, exit } where entry and exit are positions in the trace (a call
// that another thread's line interrupted is "<unfinished ...>" at its entry
// and "<... name resumed>" at its exit). The order of the lines is the
// order strace saw the calls: a thread waits in each stop until strace has
// printed it, so what a call caused comes after it.
function parseTrace(text) {
  const events = [];
  const open = new Map(); // pid -> the event unfinished in it
  let at = 0;
  for (const line of text.split('\n')) {
    const m = /^(\d+) +(.*)$/.exec(line);
    if (!m) continue;
    at++;
    const [, pid, rest] = m;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    let ev;
    if (resumed) {
      ev = open.get(pid);
      open.delete(pid);
      if (!ev) continue;
      ev.text += resumed[2];
    } else {
      const call = /^(\w+)\((\d*)/.exec(rest);
      if (!call) continue;
      ev = { name: call[1], fd: call[2] === '' ? null : Number(call[2]), text: rest, entry: at, exit: null };
      events.push(ev);
      if (rest.endsWith('<unfinished ...>')) {
        ev.text = rest.slice(0, -'<unfinished ...>'.length);
        open.set(pid, ev);
        continue;
      }
    }
    ev.exit = at;
    const ret = /\)\s+=\s+(-?\d+)/.exec(ev.text);
    ev.ret = ret ? Number(ret[1]) : null;
  }
  return events;
}

const WRITES = new Set(['write', 'writev', 'pwrite64', 'pwritev', 'pwritev2']);
const SENDS = new Set(['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg']);
const SYNCS = new Set(['fsync', 'fdatasync', 'sync_file_range']);

// What the trace says about data.mdb: its descriptors (dsync: opened with
// O_DSYNC or O_SYNC, so each write returns only once it is on disk), its
// writes, and its syncs.
function dataFile(events) {
  const fds = new Map();
  for (const e of events) {
    if (/^(openat|open|creat)$/.test(e.name) && /\/data\.mdb"/.test(e.text) && e.ret >= 0) {
      fds.set(e.ret, { dsync: /O_DSYNC|O_SYNC/.test(e.text) });
    }
  }
  const writes = events.filter((e) => WRITES.has(e.name) && fds.has(e.fd) && e.exit !== null);
  const syncs = events.filter((e) => e.exit !== null && e.ret === 0 &&
    ((SYNCS.has(e.name) && fds.has(e.fd)) || e.name === 'msync'));
  return { fds, writes, syncs, dsync: (w) => fds.get(w.fd).dsync };
}

// The first moment anything carrying `needle` left parley for a client (a
// socket; not data.mdb, not the log on fds 1 and 2).
function firstSend(events, file, needle) {
  const e = events.find((x) => SENDS.has(x.name) && x.fd > 2 && !file.fds.has(x.fd) && x.text.includes(needle));
  return e ? e.entry : null;
}

// Asserts that the message whose stored bytes hold `marker` and whose
// answer carries `id` was durable before that answer left: its data page was
// written, data.mdb was synced after that write, and a meta page written
// after that sync was durable, all before the answer.
function assertDurableBeforeAnswer(events, file, marker, id, what) {
  const answer = firstSend(events, file, id);
  assert.ok(answer !== null, `${what}: the trace has no answer carrying ${id}`);
  const w = file.writes.find((e) => e.text.includes(marker));
  assert.ok(w && w.entry < answer,
    `${what}: answered (trace line ${answer}) before its data was written to data.mdb${w ? ` (line ${w.entry})` : ''}`);
  const syncedBy = (write, limit) => (file.dsync(write) && write.exit < limit) ||
    file.syncs.some((s) => s.entry > write.exit && s.exit < limit);
  assert.ok(syncedBy(w, answer),
    `${what}: no fdatasync/fsync/msync of data.mdb between the write of its data (line ${w.exit}) and its answer (line ${answer})`);
  const firstSync = file.dsync(w) ? w.exit
    : file.syncs.find((s) => s.entry > w.exit && s.exit < answer).exit;
  const meta = file.writes.filter((e) => e.entry > firstSync && e.exit < answer);
  assert.ok(meta.some((m) => syncedBy(m, answer)),
    `${what}: no durable write to data.mdb (LMDB's meta page) between the sync at line ${firstSync} and the answer at line ${answer}`);
}

const client = h.messagesClient;

test('every ack of message:send and every 201 of POST /api/.../messages leaves parley after an fdatasync of data.mdb that covers the message', { timeout: 120000, ...h.lmdbOnly('the fdatasync of LMDB\'s data.mdb') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-fsync-'));
  const srv = await traced(dataDir);
  const nonce = Date.now().toString(36);
  const sent = []; // { marker, id, what }
  const clients = await Promise.all([0, 1, 2].map((i) => client(srv, `fs${i}`)));
  try {
    // Three clients, four sends in flight each: commits group and interleave.
    await Promise.all(clients.map(async (s, i) => {
      await Promise.all(Array.from({ length: 4 }, async (_, lane) => {
        for (let n = lane; n < 12; n += 4) {
          const marker = `fsync-${nonce}-${i}-${n}-probe`;
          const ack = await s.timeout(20000).emitWithAck('message:send',
            { conversationId: `fsync-${i % 2}`, clientMessageId: `c${i}-${n}`, type: 'text', content: marker });
          assert.equal(ack.status, 'sent', JSON.stringify(ack));
          sent.push({ marker, id: ack.messageId, what: `message:send ${marker}` });
        }
      }));
    }));
    for (let n = 0; n < 4; n++) {
      const marker = `fsync-${nonce}-api-${n}-probe`;
      const r = await fetch(`${srv.url}/api/conversations/fsync-api/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ senderId: 'api', clientMessageId: `a${n}`, type: 'text', content: marker }),
      });
      const body = await r.json();
      assert.equal(r.status, 201, JSON.stringify(body));
      sent.push({ marker, id: body.messageId, what: `POST ${marker}` });
    }
  } finally {
    clients.forEach((s) => s.close());
  }
  const events = await srv.stop();
  const file = dataFile(events);
  assert.ok(file.fds.size > 0, 'the trace never opened data.mdb');
  assert.equal(sent.length, 40);
  for (const { marker, id, what } of sent) assertDurableBeforeAnswer(events, file, marker, id, what);
});

// Holds the store's write lock from another process: parley's writer
// cannot commit until release() is called.
async function holdStore(dataDir) {
  const proc = spawn(path.join(path.dirname(h.BINARY), 'lmdb_hold'), [dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  holders.push(proc);
  await new Promise((resolve, reject) => {
    proc.stdout.once('data', (d) => (String(d).startsWith('held') ? resolve() : reject(new Error(String(d)))));
    proc.once('exit', (code) => reject(new Error(`lmdb_hold exited with ${code}`)));
  });
  return { release: () => { proc.stdin.end(); return new Promise((resolve) => proc.once('exit', resolve)); } };
}

test('while the store cannot commit, no send is acked; once it can, the 20 sends that waited are acked after at most 2 syncs of data.mdb', { timeout: 120000, ...h.lmdbOnly('the fdatasync of LMDB\'s data.mdb') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-group-'));
  const srv = await traced(dataDir);
  const nonce = Date.now().toString(36);
  const clients = await Promise.all([0, 1, 2, 3].map((i) => client(srv, `gr${i}`)));
  try {
    assert.equal(await clients[0].timeout(10000).emitWithAck('test:echo', `fence-${nonce}-before`), `fence-${nonce}-before`);
    const lock = await holdStore(dataDir);
    const acks = [];
    const pending = clients.flatMap((s, i) => Array.from({ length: 5 }, (_, n) => {
      const marker = `group-${nonce}-${i}-${n}-probe`;
      return s.timeout(60000).emitWithAck('message:send',
        { conversationId: 'group', clientMessageId: `g${i}-${n}`, type: 'text', content: marker })
        .then((ack) => { acks.push({ marker, ack }); return { marker, ack }; });
    }));
    // A socket's events are taken in order: once its echo answers, its five
    // sends wait for their commit.
    for (const s of clients) assert.equal(await s.timeout(10000).emitWithAck('test:echo', 'queued'), 'queued');
    assert.deepEqual(acks, [], 'acked while the store could not commit');
    await lock.release();
    const done = await Promise.all(pending);
    assert.equal(await clients[0].timeout(10000).emitWithAck('test:echo', `fence-${nonce}-after`), `fence-${nonce}-after`);
    for (const { ack } of done) assert.equal(ack.status, 'sent', JSON.stringify(ack));

    clients.forEach((s) => s.close());
    const events = await srv.stop();
    const file = dataFile(events);
    for (const { marker, ack } of done) assertDurableBeforeAnswer(events, file, marker, ack.messageId, marker);
    const from = firstSend(events, file, `fence-${nonce}-before`);
    const to = firstSend(events, file, `fence-${nonce}-after`);
    const syncs = file.syncs.filter((e) => e.entry > from && e.exit < to).length;
    // The writer had taken the first send before the lock was held; the
    // other 19 queued behind it and commit together.
    assert.ok(syncs >= 1 && syncs <= 2, `20 sends that waited together were synced ${syncs} times`);
  } finally {
    clients.forEach((s) => s.close());
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
