// durability.test.js - an acked message:send survives kill -9 (SPEC §4):
// 20 clients send 5,000 messages with acks into 4 conversations; parley is
// killed with SIGKILL in the middle of the run and started again on the
// same data directory: every acked message is there, each conversation's
// sequence has no gap, every sender's messages are in the order it sent
// them, and retrying the unacked ones with their clientMessageId creates
// no duplicate.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const CLIENTS = 20, TOTAL = 5000, CONVS = 4, WINDOW = 8;

async function syncAll(s, conv) {
  const out = [];
  let after;
  for (;;) {
    const page = await s.timeout(10000).emitWithAck('messages:sync', { conversationId: conv, after, limit: 500 });
    out.push(...page.messages);
    if (!page.hasMore) return out;
    after = page.messages[page.messages.length - 1].messageId;
  }
}

test('kill -9 in the middle of 5,000 acked sends from 20 clients loses no acked message and leaves no gap', { timeout: 120000 }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-dur-'));
  let srv = await h.startParley({ dataDir });
  const acked = new Map(); // clientMessageId -> { messageId, conv, sender, n }
  const sent = [];         // every message a client sent
  let killed = false;
  // Senders go on until parley is gone, so that sends are in flight when
  // it dies, however fast it answered the ones before the signal landed.
  let dead = false;
  srv.exited.then(() => { dead = true; });
  const clients = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const s = h.sioClient(srv, '/messages', { query: { userId: `d${i}` }, transports: ['websocket'] });
    await h.connected(s);
    return s;
  }));
  const perClient = TOTAL / CLIENTS;
  await Promise.all(clients.map(async (s, i) => {
    const conv = `dur-${i % CONVS}`;
    let next = 0;
    async function lane() {
      while (!dead && next < perClient) {
        const n = next++;
        const msg = { conversationId: conv, clientMessageId: `d${i}-${n}`, type: 'text', content: `d${i} #${n}` };
        sent.push({ sender: `d${i}`, n, msg });
        let ack;
        try {
          ack = await s.timeout(5000).emitWithAck('message:send', msg);
        } catch (e) {
          // No ack is expected only once parley is gone.
          if (!killed) throw new Error(`d${i} #${n} got no ack before the kill: ${e.message}`);
          return;
        }
        assert.equal(ack.status, 'sent', `d${i} #${n}: ${JSON.stringify(ack)}`);
        acked.set(msg.clientMessageId, { messageId: ack.messageId, conv, sender: `d${i}`, n });
        if (acked.size >= TOTAL / 2 && !killed) {
          killed = true;
          srv.kill('SIGKILL');
        }
      }
    }
    await Promise.all(Array.from({ length: WINDOW }, lane));
  }));
  clients.forEach((s) => s.close());
  await srv.exited;
  assert.ok(killed, 'the run ended before the kill');
  assert.ok(acked.size >= TOTAL / 2 && acked.size < sent.length,
    `acked ${acked.size} of ${sent.length}: the kill did not land mid-run`);

  srv = await h.startParley({ dataDir });
  const reader = h.sioClient(srv, '/messages', { query: { userId: 'reader' }, transports: ['websocket'] });
  await h.connected(reader);
  try {
    const stored = new Map(); // messageId -> message
    for (let c = 0; c < CONVS; c++) {
      const msgs = await syncAll(reader, `dur-${c}`);
      assert.deepEqual(msgs.map((m) => m.seq), msgs.map((_, k) => k + 1), `dur-${c}: the sequence has a gap`);
      const lastBySender = new Map();
      for (const m of msgs) {
        stored.set(m.messageId, m);
        const n = Number(m.clientMessageId.split('-')[1]);
        const prev = lastBySender.get(m.senderId);
        // With a window of 8, a sender's sends may commit out of order only
        // within its window; never a later one before an earlier beyond it.
        assert.ok(prev === undefined || n > prev - WINDOW, `${m.senderId}: #${n} after #${prev}`);
        lastBySender.set(m.senderId, Math.max(prev === undefined ? -1 : prev, n));
      }
    }
    let missing = 0;
    for (const a of acked.values()) if (!stored.has(a.messageId)) missing++;
    assert.equal(missing, 0, `${missing} acked messages were lost`);

    // Retrying everything that was sent: the acked ones come back with their
    // id, the rest are created once; nothing is duplicated.
    const retrier = h.sioClient(srv, '/messages', { query: { userId: 'd0' }, transports: ['websocket'] });
    await h.connected(retrier);
    for (const { sender, msg } of sent.filter((x) => x.sender === 'd0')) {
      const ack = await retrier.timeout(5000).emitWithAck('message:send', msg);
      const before = acked.get(msg.clientMessageId);
      if (before) assert.equal(ack.messageId, before.messageId, `${sender} retry of ${msg.clientMessageId}`);
    }
    retrier.close();
    const conv0 = await syncAll(reader, 'dur-0');
    const ids = new Set(conv0.map((m) => `${m.senderId}/${m.clientMessageId}`));
    assert.equal(ids.size, conv0.length, 'a retry duplicated a message');
    console.log(`# durability: ${acked.size} acked of ${sent.length} sent before kill -9; all ${acked.size} found after restart`);
  } finally {
    reader.close();
    assert.equal((await srv.stop()).code, 0);
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
