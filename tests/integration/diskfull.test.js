// diskfull.test.js - a full disk (not a full map) answers sends with 507
// naming the disk, counts it, keeps reads going, leaves no gap in the
// sequence, and takes writes again once there is room. Two ways to run out
// of room: a real full file system (a small tmpfs: needs the right to mount,
// which root has outside a container), and the file size limit
// (RLIMIT_FSIZE, set on the running parley with prlimit: needs nothing).
// LMDB reports a write the disk cut short as EIO in both cases, which is
// the path that must answer 507 rather than 500.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

// Every client and server a test made, closed and stopped after it even
// when it fails half-way (a client left open would keep this file alive).
const open = { clients: [], servers: [] };
function client(srv, opts) {
  const s = h.sioClient(srv, '/messages', opts);
  open.clients.push(s);
  return s;
}
async function start(opts) {
  const srv = await h.startParley(opts);
  open.servers.push(srv);
  return srv;
}
test.afterEach(async () => {
  for (const s of open.clients.splice(0)) s.close();
  for (const srv of open.servers.splice(0)) {
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL');
    await srv.exited;
  }
});

const DISK_FULL = 'the message store is full: no space is left on the disk';
const FILE_LIMIT = 'the message store is full: its file reached the file size limit';

const mounts = [];
test.after(() => {
  for (const dir of mounts.splice(0)) {
    try { execFileSync('umount', ['-l', dir]); } catch (_) { /* gone already */ }
  }
});

// Sends 30 KB messages until one is refused; returns the acked ids and the
// refusal.
async function fill(s, conversationId) {
  const acked = [];
  for (let i = 0; i < 2000; i++) {
    const ack = await s.timeout(10000).emitWithAck('message:send', { conversationId,
      clientMessageId: `${conversationId}-${i}`, type: 'text', content: `${i} ${'z'.repeat(30000)}` });
    if (ack.status !== 'sent') return { acked, refused: ack };
    acked.push(ack.messageId);
  }
  throw new Error('the store never filled up');
}

async function metric(srv, reason) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  return Number(new RegExp(`^parley_store_full_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)[1]);
}

async function everything(s, conversationId) {
  const all = [];
  let after;
  for (;;) {
    const p = await s.timeout(5000).emitWithAck('messages:sync', { conversationId, after, limit: 100 });
    all.push(...p.messages);
    if (!p.hasMore) return all;
    after = all[all.length - 1].messageId;
  }
}

// The part both ways share: fill, check the refusal and what goes on
// working, make room with `makeRoom`, send again, check the sequence.
async function runOutOfRoom(srv, expected, makeRoom) {
  const s = client(srv, { query: { userId: 'filler' }, transports: ['websocket'] });
  await h.connected(s);
  const { acked, refused } = await fill(s, 'disk');
  assert.deepEqual(refused, { status: 'error', statusCode: 507, message: expected });
  assert.ok(acked.length > 3, `only ${acked.length} messages fit`);
  assert.ok(await metric(srv, 'disk') > 0, 'the full disk was not counted');
  assert.equal(await metric(srv, 'map'), 0);
  assert.match(srv.logs(), /store: a write failed: (ENOSPC|EFBIG)/);
  // Reads go on; another refused send changes nothing.
  const page = await s.timeout(5000).emitWithAck('messages:sync', { conversationId: 'disk', limit: 3 });
  assert.equal(page.messages.length, 3);
  const again = await s.timeout(10000).emitWithAck('message:send',
    { conversationId: 'disk', clientMessageId: 'again', type: 'text', content: 'z'.repeat(60000) });
  assert.equal(again.statusCode, 507);
  await makeRoom();
  const ack = await s.timeout(10000).emitWithAck('message:send',
    { conversationId: 'disk', clientMessageId: 'after', type: 'text', content: 'room again' });
  assert.equal(ack.status, 'sent', JSON.stringify(ack));
  acked.push(ack.messageId);
  const all = await everything(s, 'disk');
  assert.deepEqual(all.map((m) => m.messageId), acked);
  assert.deepEqual(all.map((m) => m.seq), all.map((_, k) => k + 1), 'the sequence has a gap');
  s.close();
}

test('a full file system (a small tmpfs): message:send gets 507 "no space is left on the disk", counted; reads go on; once there is room again sends work with no gap in the sequence', { timeout: 60000, ...h.lmdbOnly('LMDB\'s data file on a full disk') }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    // The other test covers the same path without mounting.
    t.skip(`cannot mount a tmpfs here (${String(e.stderr || e.message).trim()}): ` +
      'needs root with CAP_SYS_ADMIN');
    return;
  }
  mounts.push(dir);
  // Room taken up front, given back to show that writes resume.
  const ballast = path.join(dir, 'ballast');
  fs.writeFileSync(ballast, Buffer.alloc(1 << 20));
  const srv = await start({ dataDir: path.join(dir, 'data') });
  try {
    await runOutOfRoom(srv, DISK_FULL, async () => fs.rmSync(ballast));
  } finally {
    await srv.stop();
  }
});

test('the file size limit (RLIMIT_FSIZE, lowered on the running parley): message:send gets 507 naming it, counted; parley is not killed by SIGXFSZ; once the limit is raised sends work with no gap', { timeout: 60000, ...h.lmdbOnly('LMDB\'s data file on a full disk') }, async () => {
  const srv = await start({});
  try {
    const file = path.join(srv.dataDir, 'data.mdb');
    // The soft limit only: raising it again needs no privilege.
    const limit = (bytes) => execFileSync('prlimit', ['--pid', String(srv.proc.pid), `--fsize=${bytes}:unlimited`]);
    limit(fs.statSync(file).size + (1 << 20));
    await runOutOfRoom(srv, FILE_LIMIT, async () => limit('unlimited'));
    assert.equal(srv.proc.exitCode, null);
  } finally {
    await srv.stop();
  }
});

test('what a client is told for each store error: 507 naming what is full, 503 for any other error of the store (an I/O error is not a script failure), 500 only for what is not the store\'s', h.lmdbOnly('LMDB\'s data file on a full disk'), async () => {
  const srv = await start({});
  try {
    const s = client(srv, { query: { userId: 'asker' }, transports: ['websocket'] });
    await h.connected(s);
    const ask = (err) => s.timeout(3000).emitWithAck('test:store-failure', { err, otherwise: 'not stored' });
    const cases = [
      ['MDB_MAP_FULL: Environment mapsize limit reached', 507, 'the message store is full: its map size (PARLEY_MAP_SIZE) is reached'],
      ['ENOSPC: no space left on the disk', 507, DISK_FULL],
      ['EDQUOT: the disk quota is used up', 507, 'the message store is full: no space is left on the disk (quota)'],
      ['EFBIG: the data file reached the file size limit (RLIMIT_FSIZE)', 507, FILE_LIMIT],
      ['EIO: an I/O error', 503, 'the message store cannot write now (EIO)'],
      ['EROFS: the file system is read-only', 503, 'the message store cannot write now (EROFS)'],
      ['MDB_TXN_FULL: Transaction has too many dirty pages - transaction too big', 503,
        'the message store cannot write now (MDB_TXN_FULL)'],
      ['something else', 500, 'not stored'],
    ];
    for (const [err, status, message] of cases) assert.deepEqual(await ask(err), { status, message }, err);
    s.close();
  } finally {
    await srv.stop();
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
