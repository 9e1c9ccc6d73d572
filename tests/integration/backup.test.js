// backup.test.js - `parley backup DIR` (docs/deploy.md): a compacted copy of
// the live store, taken while clients send; restored (a parley started on
// the copy), it holds every message acked before the backup began, each the
// same as in the original store; a backup into an existing directory or of
// a directory with no database fails with a message and exit 1.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const h = require('./harness');

test.after(h.cleanup);

const tmp = (what) => fs.mkdtempSync(path.join(os.tmpdir(), `parley-backup-${what}-`));

// Runs `parley backup dest` on dataDir without blocking the test's loop
// (the clients keep sending meanwhile): { code, out }.
function backup(dataDir, dest) {
  return new Promise((resolve) => {
    const p = spawn(h.BINARY, ['backup', dest], {
      cwd: h.ROOT, env: { PATH: process.env.PATH, PARLEY_DATA_DIR: dataDir, ...(process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS } : {}) },
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => resolve({ code, out }));
  });
}

// Every message of a conversation, as messages:sync gives them: id -> message.
async function messages(srv, conversationId) {
  const r = await h.connected(h.sioClient(srv, '/messages', { query: { userId: 'reader' }, transports: ['websocket'] }));
  const all = new Map();
  let after;
  for (;;) {
    const page = await r.timeout(5000).emitWithAck('messages:sync', { conversationId, after, limit: 500 });
    for (const m of page.messages) all.set(m.messageId, m);
    if (!page.hasMore) break;
    after = page.messages[page.messages.length - 1].messageId;
  }
  r.close();
  return all;
}

test('parley backup while clients send: the restored copy holds every message acked before it began, each as in the original', { timeout: 60000, ...h.lmdbOnly('parley backup copies the LMDB data directory') }, async () => {
  const dataDir = tmp('data');
  const srv = await h.startParley({ dataDir });
  const senders = await Promise.all([0, 1, 2].map((i) =>
    h.connected(h.sioClient(srv, '/messages', { query: { userId: `b${i}` }, transports: ['websocket'] }))));
  const acked = [];
  let going = true;
  const loops = senders.map(async (s, i) => {
    for (let n = 0; going; n++) {
      const ack = await s.timeout(5000).emitWithAck('message:send',
        { conversationId: 'kept', clientMessageId: `${i}-${n}`, type: 'text', content: `message ${i}/${n} ${'x'.repeat(n % 50)}` });
      acked.push(ack.messageId);
    }
  });
  await h.waitFor(() => acked.length, (n) => n >= 300, 'sends acked', 20000);
  const before = acked.slice();
  const dest = path.join(tmp('dest'), 'copy');
  const r = await backup(dataDir, dest);
  going = false;
  await Promise.all(loops);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /backed up .* to .*copy/);
  const original = await messages(srv, 'kept');
  assert.equal((await srv.stop()).code, 0);

  // Restore: a parley on the copy.
  const restored = await h.startParley({ dataDir: dest });
  const copy = await messages(restored, 'kept');
  assert.deepEqual(before.filter((id) => !copy.has(id)), [], 'acked before the backup, missing from it');
  for (const [id, m] of copy) assert.deepEqual(m, original.get(id), `message ${id} differs in the copy`);
  // It is a store of its own: it takes new messages.
  const s = await h.connected(h.sioClient(restored, '/messages', { query: { userId: 'b0' }, transports: ['websocket'] }));
  const ack = await s.timeout(5000).emitWithAck('message:send', { conversationId: 'kept', clientMessageId: 'after-restore', type: 'text', content: 'new' });
  assert.equal(ack.status, 'sent');
  s.close();
  assert.equal((await restored.stop()).code, 0);
});

test('parley backup refuses an existing destination and a directory with no database, saying so, exit 1', h.lmdbOnly('parley backup copies the LMDB data directory'), async () => {
  const empty = tmp('nodb');
  const r1 = spawnSync(h.BINARY, ['backup', path.join(tmp('dest'), 'x')], { cwd: h.ROOT, encoding: 'utf8', env: { PATH: process.env.PATH, PARLEY_DATA_DIR: empty } });
  assert.equal(r1.status, 1, r1.stdout + r1.stderr);
  assert.match(r1.stderr, /no database in .*nodb/);
  const srv = await h.startParley();
  const exists = tmp('exists');
  const r2 = spawnSync(h.BINARY, ['backup', exists], { cwd: h.ROOT, encoding: 'utf8', env: { PATH: process.env.PATH, PARLEY_DATA_DIR: srv.dataDir } });
  assert.equal(r2.status, 1, r2.stdout + r2.stderr);
  assert.match(r2.stderr, /cannot create the backup directory .*File exists \(name a new one\)/);
  const r3 = spawnSync(h.BINARY, ['backup'], { cwd: h.ROOT, encoding: 'utf8' });
  assert.equal(r3.status, 2);
  assert.match(r3.stderr, /usage: parley backup DIR/);
  await srv.stop();
});
