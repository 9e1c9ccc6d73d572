// pgwriters.test.js - the store on PostgreSQL over several connections
// (PARLEY_PG_WRITERS, issue 18's throughput): parley opens that many
// connections (2 by default; 4 below), each with a write transaction in
// flight, and the writes about one conversation all go through one of
// them. 16 senders into 8
// conversations at once, window 8: every message acked is stored once, each
// conversation's sequence is gapless and each sender's messages are in the
// order it sent them; the same clientMessageId sent into two conversations
// at once (through two connections) makes one message, 20 times over.
// Runs when PARLEY_TEST_PG is set (tests/run.sh's PostgreSQL pass),
// skipped otherwise.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const h = require('./harness');

const PG = process.env.PARLEY_TEST_PG;
const skip = !PG && 'needs PostgreSQL: PARLEY_TEST_PG=$(bash tests/pg.sh start DIR) (tests/run.sh does)';

const newDatabase = () => h.newPgDatabase('pgwriters');

// Sessions PostgreSQL has open on database `name`.
const sessionsOn = (name) => Number(execFileSync('psql', [PG, '-qAtc',
  `SELECT count(*) FROM pg_stat_activity WHERE datname = '${name}'`], { encoding: 'utf8' }).trim());

// The connection (of 4) a conversation's writes go through: core/store/
// pg.c's FNV-1a of its id.
function route(conv) {
  let h = 2166136261;
  for (const b of Buffer.from(conv)) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h % 4;
}

const client = h.messagesClient;

const msg = (conversationId, content, clientMessageId) =>
  ({ conversationId, clientMessageId, type: 'text', content });

const history = h.syncAll;

test('PARLEY_PG_WRITERS connections are open (2 by default, 4 or 1 when asked)', { skip, timeout: 60000 }, async () => {
  const two = newDatabase();
  const dflt = await h.startParley({ env: { PARLEY_STORE: two.uri } });
  assert.equal(sessionsOn(two.name), 2, dflt.logs());
  assert.match(dflt.logs(), /2 connections\)/);
  assert.equal((await dflt.stop()).code, 0);
  const four = newDatabase();
  const srv = await h.startParley({ env: { PARLEY_STORE: four.uri, PARLEY_PG_WRITERS: '4' } });
  assert.equal(sessionsOn(four.name), 4, srv.logs());
  assert.equal((await srv.stop()).code, 0);
  const one = newDatabase();
  const single = await h.startParley({ env: { PARLEY_STORE: one.uri, PARLEY_PG_WRITERS: '1' } });
  assert.equal(sessionsOn(one.name), 1);
  assert.equal((await single.stop()).code, 0);
});

test('16 senders into 8 conversations at once: every acked message stored once, each conversation gapless, each sender in its order', { skip, timeout: 120000 }, async () => {
  const db = newDatabase();
  const srv = await h.startParley({ env: { PARLEY_STORE: db.uri, PARLEY_PG_WRITERS: '4' } });
  const SENDERS = 16, CONVS = 8, EACH = 60, WINDOW = 8;
  const clients = await Promise.all(Array.from({ length: SENDERS }, (_, i) => client(srv, `w${i}`)));
  const acked = [];
  await Promise.all(clients.map(async (c, i) => {
    let next = 0;
    const lane = async () => {
      while (next < EACH) {
        const n = next++;
        // Each sender writes into two conversations, alternating: its
        // sends cross connections, its order within each must hold.
        const conv = `wr-${(i + n) % CONVS}`;
        const ack = await c.timeout(20000).emitWithAck('message:send', msg(conv, `w${i} #${n}`, `w${i}-${n}`));
        assert.equal(ack.status, 'sent', JSON.stringify(ack));
        acked.push({ id: ack.messageId, conv, sender: `w${i}`, n });
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, lane));
  }));
  assert.equal(acked.length, SENDERS * EACH);
  const reader = await client(srv, 'w-reader');
  const stored = new Map();
  for (let k = 0; k < CONVS; k++) {
    const all = await history(reader, `wr-${k}`);
    assert.deepEqual(all.map((m) => m.seq), all.map((_, i) => i + 1), `wr-${k} is gapless`);
    const bySender = new Map();
    for (const m of all) {
      stored.set(m.messageId, m);
      const n = Number(/#(\d+)$/.exec(m.content)[1]);
      const seen = bySender.get(m.senderId) || [];
      seen.push(n);
      bySender.set(m.senderId, seen);
    }
    // A sender's sends into one conversation commit in the order it made
    // them only when they go through one connection.
    for (const [sender, ns] of bySender) {
      assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `${sender}'s messages in wr-${k} in its order`);
    }
  }
  for (const a of acked) assert.ok(stored.has(a.id), `acked ${a.id} is stored`);
  assert.equal(stored.size, acked.length, 'nothing stored twice');
  for (const c of [...clients, reader]) c.close();
  assert.equal((await srv.stop()).code, 0);
});

test('the same clientMessageId sent into two conversations at once (two connections) makes one message, 20 times over', { skip, timeout: 60000 }, async () => {
  const db = newDatabase();
  const srv = await h.startParley({ env: { PARLEY_STORE: db.uri, PARLEY_PG_WRITERS: '4' } });
  const c = await client(srv, 'twice');
  for (let i = 0; i < 20; i++) {
    // Two conversations whose writes go through different connections.
    const x = `tw-a-${i}`;
    let k = 0;
    while (route(`tw-b-${i}-${k}`) === route(x)) k++;
    const y = `tw-b-${i}-${k}`;
    const [a, b] = await Promise.all([
      c.timeout(10000).emitWithAck('message:send', msg(x, 'one', `dup-${i}`)),
      c.timeout(10000).emitWithAck('message:send', msg(y, 'one', `dup-${i}`)),
    ]);
    assert.equal(a.messageId, b.messageId, `pair ${i}: ${JSON.stringify([a, b])}`);
    const stored = (await history(c, x)).length + (await history(c, y)).length;
    assert.equal(stored, 1, `pair ${i}: one message stored`);
  }
  c.close();
  assert.equal((await srv.stop()).code, 0);
});
