// shutdown.test.js - SIGTERM drains (what was acked or in flight is
// committed, clients are told, exit 0); a data directory parley cannot use
// stops it at start with a message that says why, never a crash.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

test('SIGTERM while clients send: exit 0, every client hears the server go, and every acked message is there after a restart', { timeout: 60000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-term-'));
  let srv = await h.startParley({ dataDir });
  const acked = [];
  let disconnects = 0;
  const clients = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const s = h.sioClient(srv, '/messages', { query: { userId: `t${i}` }, transports: ['websocket'] });
    s.on('disconnect', () => { disconnects++; });
    await h.connected(s);
    return s;
  }));
  let stop = false;
  const loops = clients.map(async (s, i) => {
    for (let n = 0; !stop; n++) {
      try {
        const ack = await s.timeout(3000).emitWithAck('message:send',
          { conversationId: 'term', clientMessageId: `t${i}-${n}`, type: 'text', content: `${i}/${n}` });
        if (ack.status === 'sent') acked.push(ack.messageId);
      } catch (_) { return; }
    }
  });
  await h.sleep(500);
  const st = await new Promise((resolve) => {
    srv.exited.then(resolve);
    srv.proc.kill('SIGTERM');
  });
  stop = true;
  await Promise.all(loops);
  assert.deepEqual({ code: st.code, signal: st.signal }, { code: 0, signal: null }, srv.logs());
  assert.equal(disconnects, clients.length, 'a client was not told the server went');
  assert.ok(acked.length > 50, `only ${acked.length} messages were acked before SIGTERM`);
  clients.forEach((s) => s.close());

  srv = await h.startParley({ dataDir });
  const r = h.sioClient(srv, '/messages', { query: { userId: 'reader' }, transports: ['websocket'] });
  await h.connected(r);
  const ids = new Set();
  let after;
  for (;;) {
    const page = await r.timeout(5000).emitWithAck('messages:sync', { conversationId: 'term', after, limit: 500 });
    page.messages.forEach((m) => ids.add(m.messageId));
    if (!page.hasMore) break;
    after = page.messages[page.messages.length - 1].messageId;
  }
  assert.equal(acked.filter((id) => !ids.has(id)).length, 0, 'acked messages were lost in the drain');
  r.close();
  await srv.stop();
});

function startWith(dataDir, port) {
  return spawnSync(h.BINARY, [], { cwd: h.ROOT, encoding: 'utf8', timeout: 10000,
    env: { PATH: process.env.PATH, PORT: String(port), PARLEY_DATA_DIR: dataDir, PARLEY_LOG: 'info' } });
}

test('a data directory that is not an LMDB database, a file, or under a missing parent: a clear start-up error, exit 1', async () => {
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
