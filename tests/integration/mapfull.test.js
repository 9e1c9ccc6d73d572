// mapfull.test.js - a full store (PARLEY_MAP_SIZE reached) answers sends
// with a clear 507 error and loses nothing it had already acked; reads go on.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

test('once the map is full, message:send gets 507 "the message store is full"; every message acked before is still there after a restart', { timeout: 60000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-full-'));
  const env = { PARLEY_MAP_SIZE: String(1 << 20) };
  let srv = await h.startParley({ dataDir, env });
  let s = h.sioClient(srv, '/messages', { query: { userId: 'filler' }, transports: ['websocket'] });
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
  assert.deepEqual(full, { status: 'error', statusCode: 507, message: 'the message store is full' });
  assert.ok(acked.length > 10, `only ${acked.length} messages fit`);
  // Reads still work while full.
  const page = await s.timeout(5000).emitWithAck('messages:sync', { conversationId: 'full', limit: 5 });
  assert.equal(page.messages.length, 5);
  s.close();
  assert.equal((await srv.stop()).code, 0);
  assert.match(srv.logs(), /store: a write failed: MDB_MAP_FULL/);

  srv = await h.startParley({ dataDir, env });
  s = h.sioClient(srv, '/messages', { query: { userId: 'filler' }, transports: ['websocket'] });
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
