// mapfull.test.js - a full store (PARLEY_MAP_SIZE reached) answers sends
// with a clear 507 error and loses nothing it had already acked; reads go on;
// a send that failed leaves no gap in its conversation's sequence.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
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

const holders = [];
test.after(() => {
  for (const proc of holders.splice(0)) if (proc.exitCode === null) proc.kill('SIGKILL');
});

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

// Resolves once /metrics has counted `n` events named `event`.
async function eventsIn(srv, event, n) {
  const line = new RegExp(`^parley_events_in_total\\{event="${event}"\\} (\\d+)$`, 'm');
  for (;;) {
    const m = line.exec(await (await fetch(`${srv.url}/metrics`)).text());
    if (m && Number(m[1]) >= n) return;
    await h.sleep(10);
  }
}

test('once the map is full, message:send gets 507 "the message store is full" naming the map, counted; every message acked before is still there after a restart', { timeout: 60000, ...h.lmdbOnly('the LMDB map filling up') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-full-'));
  const env = { PARLEY_MAP_SIZE: String(1 << 20) };
  let srv = await start({ dataDir, env });
  let s = client(srv, { query: { userId: 'filler' }, transports: ['websocket'] });
  await h.connected(s);
  const acked = [];
  let full = null;
  const big = 'x'.repeat(8000);
  for (let i = 0; i < 1000 && !full; i++) {
    const ack = await s.timeout(5000).emitWithAck('message:send',
      { conversationId: 'full', clientMessageId: `f${i}`, type: 'text', content: `${i} ${big}` });
    if (ack.status === 'sent') acked.push(ack.messageId);
    else full = ack;
  }
  assert.ok(full, 'the store never filled up');
  assert.deepEqual(full, { status: 'error', statusCode: 507,
    message: 'the message store is full: its map size (PARLEY_MAP_SIZE) is reached' });
  const metrics = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(metrics, /^parley_store_full_total\{reason="map"\} [1-9]/m);
  assert.match(metrics, /^parley_store_full_total\{reason="disk"\} 0$/m);
  assert.ok(acked.length > 10, `only ${acked.length} messages fit`);
  // Reads still work while full.
  const page = await s.timeout(5000).emitWithAck('messages:sync', { conversationId: 'full', limit: 5 });
  assert.equal(page.messages.length, 5);
  s.close();
  assert.equal((await srv.stop()).code, 0);
  assert.match(srv.logs(), /store: a write failed: MDB_MAP_FULL/);

  srv = await start({ dataDir, env });
  s = client(srv, { query: { userId: 'filler' }, transports: ['websocket'] });
  await h.connected(s);
  const ids = [];
  let after;
  for (;;) {
    const p = await s.timeout(5000).emitWithAck('messages:sync', { conversationId: 'full', after, limit: 100 });
    ids.push(...p.messages.map((m) => m.messageId));
    if (!p.hasMore) break;
    after = ids[ids.length - 1];
  }
  assert.deepEqual(ids, acked);
  s.close();
  await srv.stop();
});

// Every message of a conversation, through sync pages.
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

// Restarts on `dataDir` with a map big enough for everything, and checks
// that the conversation holds exactly the acked messages, numbered 1..N.
async function checkSequence(dataDir, conversationId, acked) {
  const srv = await start({ dataDir, env: { PARLEY_MAP_SIZE: String(64 << 20) } });
  try {
    const s = client(srv, { query: { userId: 'checker' }, transports: ['websocket'] });
    await h.connected(s);
    const all = await everything(s, conversationId);
    assert.deepEqual(all.map((m) => m.seq), all.map((_, k) => k + 1), 'the sequence has a gap');
    assert.deepEqual(new Set(all.map((m) => m.messageId)), new Set(acked),
      'the stored messages are not the acked ones');
    s.close();
  } finally {
    await srv.stop();
  }
}

test('a send that failed on a full map takes no sequence number: the small sends that still fit after it, and a restart, leave no gap', { timeout: 60000, ...h.lmdbOnly('the LMDB map filling up') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-full-'));
  const srv = await start({ dataDir, env: { PARLEY_MAP_SIZE: String(1 << 20) } });
  const acked = [];
  let failed = 0;
  let ackedAfter = 0;
  try {
    const s = client(srv, { query: { userId: 'filler' }, transports: ['websocket'] });
    await h.connected(s);
    const big = 'x'.repeat(30000);
    const send = (content, clientMessageId) => s.timeout(5000).emitWithAck('message:send',
      { conversationId: 'gaps', clientMessageId, type: 'text', content });
    // Big messages until the map refuses some, each followed by a small
    // one that still fits.
    for (let i = 0; i < 200 && failed < 5; i++) {
      for (const ack of [await send(`${i} ${big}`, `g${i}-big`), await send(`${i} small`, `g${i}-small`)]) {
        if (ack.status === 'sent') {
          acked.push(ack.messageId);
          if (failed) ackedAfter++;
        } else {
          assert.equal(ack.statusCode, 507, JSON.stringify(ack));
          failed++;
        }
      }
    }
    assert.ok(failed >= 5, 'the map never filled up');
    assert.ok(ackedAfter > 0, 'nothing fit after the first failure: the test proves nothing');
    s.close();
  } finally {
    await srv.stop();
  }
  await checkSequence(dataDir, 'gaps', acked);
});

test('concurrent senders on a full map: batches that fail together or behind a failed one leave no gap, and no failed message is stored', { timeout: 60000, ...h.lmdbOnly('the LMDB map filling up') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-full-'));
  const srv = await start({ dataDir, env: { PARLEY_MAP_SIZE: String(1 << 20) } });
  const acked = [];
  let failed = 0;
  try {
    const clients = [];
    for (let c = 0; c < 4; c++) {
      const s = client(srv, { query: { userId: `sender${c}` }, transports: ['websocket'] });
      await h.connected(s);
      clients.push(s);
    }
    const sizes = [20000, 10, 5000, 10, 40000, 10, 300];
    let n = 0;
    // Each client keeps 8 sends in flight, sizes mixed, until 40 failed.
    await Promise.all(clients.map(async (s, c) => {
      const inflight = new Set();
      while (failed < 40 && n < 5000) {
        const i = n++;
        const p = s.timeout(10000).emitWithAck('message:send', { conversationId: 'crowd',
          clientMessageId: `c${c}-${i}`, type: 'text', content: `${i} ${'y'.repeat(sizes[i % sizes.length])}` })
          .then((ack) => {
            if (ack.status === 'sent') acked.push(ack.messageId);
            else if (ack.statusCode === 507) failed++;
            else throw new Error(JSON.stringify(ack));
          });
        inflight.add(p);
        p.finally(() => inflight.delete(p));
        if (inflight.size >= 8) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    }));
    assert.ok(failed >= 40, 'the map never filled up');
    for (const s of clients) s.close();
  } finally {
    await srv.stop();
  }
  await checkSequence(dataDir, 'crowd', acked);
});

test('a retry of a send still in flight is acked only if that send is stored: when its commit fails, so does the retry', { timeout: 60000, ...h.lmdbOnly('the LMDB map filling up') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-full-'));
  const srv = await start({ dataDir, env: { PARLEY_MAP_SIZE: String(1 << 20) } });
  const acked = [];
  try {
    const s = client(srv, { query: { userId: 'filler' }, transports: ['websocket'] });
    await h.connected(s);
    const send = (content, clientMessageId) => s.timeout(10000).emitWithAck('message:send',
      { conversationId: 'retry', clientMessageId, type: 'text', content });
    let sends = 0;
    for (let i = 0; ; i++) {
      const ack = await send(`${i} ${'x'.repeat(30000)}`, `r${i}`);
      sends++;
      if (ack.status !== 'sent') break;
      acked.push(ack.messageId);
    }
    // The writer takes the next send and waits for the lock; the retry
    // comes while it waits, so its wait is queued behind a commit that
    // is going to fail.
    const lock = await holdStore(dataDir);
    const first = send(`last ${'x'.repeat(60000)}`, 'last');
    await eventsIn(srv, 'message:send', sends + 1);
    const retry = send(`last ${'x'.repeat(60000)}`, 'last');
    await eventsIn(srv, 'message:send', sends + 2);
    await lock.release();
    const [a, b] = await Promise.all([first, retry]);
    assert.equal(a.statusCode, 507, JSON.stringify(a));
    assert.deepEqual(b, a, 'the retry of a send that failed was answered otherwise');
    s.close();
  } finally {
    await srv.stop();
  }
  await checkSequence(dataDir, 'retry', acked);
});
// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
