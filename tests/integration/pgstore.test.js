// pgstore.test.js - the store on PostgreSQL (issue 18, docs/storage-
// postgresql.md) as only PostgreSQL can be: two parley processes on one
// database (a message sent through one is synced through the other; the
// same clientMessageId sent to both at once makes one message; concurrent
// sends into one conversation from both give a gapless sequence), kill -9
// of parley and an immediate stop of PostgreSQL mid-load (every acked
// message is there, in order, no gap), and sends while PostgreSQL is down
// (a 503 error, never an ack). Runs when PARLEY_TEST_PG is set (tests/pg.sh
// start DIR prints it; tests/run.sh does), skipped otherwise.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const h = require('./harness');

const PG = process.env.PARLEY_TEST_PG;
const skip = !PG && 'needs PostgreSQL: PARLEY_TEST_PG=$(bash tests/pg.sh start DIR) (tests/run.sh does)';

// A new database of its own: its URI.
const newDatabase = () => h.newPgDatabase('pgstore').uri;

const KEY = 'pgstore-key';
// The schema version this binary migrates to: its last pg_schema_<n>.sql.
const LATEST = Math.max(...require('node:fs').readdirSync(path.join(h.ROOT, 'core', 'store'))
  .map((f) => /^pg_schema_(\d+)\.sql$/.exec(f)).filter(Boolean).map((m) => Number(m[1])));
async function start(store) {
  return h.startParley({ env: { PARLEY_STORE: store, PARLEY_API_KEY: KEY } });
}

async function putMembers(srv, conv, members) {
  const r = await fetch(`${srv.url}/api/conversations/${conv}/members`, {
    method: 'PUT', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ members }),
  });
  assert.equal(r.status, 200, `PUT members: ${r.status} ${await r.text()}`);
}

const client = h.messagesClient;

const msg = (conversationId, content, clientMessageId) =>
  ({ conversationId, clientMessageId, type: 'text', content });

function send(c, conv, content, cid, ms = 10000) {
  return c.timeout(ms).emitWithAck('message:send', msg(conv, content, cid));
}

// Every message of a conversation, by paging sync through `c`.
const history = h.syncAll;

function assertGapless(messages) {
  assert.deepEqual(messages.map((m) => m.seq), messages.map((_, i) => i + 1));
}

// The test PostgreSQL's directory (the URI's host: tests/pg.sh's DIR).
function pgDir() {
  return decodeURIComponent(/[?&]host=([^&]*)/.exec(PG)[1]);
}
// Stopped: started again by the test, or by test.after should it not get
// there (the PostgreSQL is the whole suite's).
let pgStopped = false;
function pgStopImmediate() {
  pgStopped = true;
  execFileSync('bash', [path.join(h.ROOT, 'tests', 'pg.sh'), 'stop', pgDir()], { stdio: 'ignore' });
}
function pgStart() {
  execFileSync('bash', [path.join(h.ROOT, 'tests', 'pg.sh'), 'start', pgDir()], { stdio: 'ignore' });
  pgStopped = false;
}

test('a database at schema version 1 is migrated to the latest version at start: its messages, keys and sequence go on', { skip }, async () => {
  const store = newDatabase();
  const sql = (text) => execFileSync('psql', [store, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', text],
    { encoding: 'utf8' }).trim();
  // Version 1 as a parley of that version left it, with one message sent
  // through its parley_send.
  execFileSync('psql', [store, '-qX1', '-v', 'ON_ERROR_STOP=1', '-f',
    path.join(h.ROOT, 'core', 'store', 'pg_schema_1.sql')], { stdio: 'ignore' });
  sql('CREATE TABLE parley_schema_version (version integer PRIMARY KEY, '
    + 'applied timestamptz NOT NULL DEFAULT now()); '
    + 'INSERT INTO parley_schema_version (version) VALUES (1)');
  const old = sql(`SELECT message_id FROM parley_send('mig-1', 'ann', 'c-1', 'text', '"before"',
    NULL, '{"id":"ann"}', '{}', 1764700000000, '2025-12-02T18:26:40.000Z')`);
  const srv = await start(store);
  assert.match(srv.logs(), /migrated .* to schema version 2/);
  assert.match(srv.logs(), /migrated .* to schema version 3/);
  assert.match(srv.logs(), new RegExp(`migrated .* to schema version ${LATEST}`));
  assert.equal(sql('SELECT max(version) FROM parley_schema_version'), String(LATEST));
  const ann = await client(srv, 'ann');
  // The old key answers the old message; the next message takes seq 2.
  const retry = await send(ann, 'mig-1', 'before', 'c-1');
  assert.equal(retry.messageId, old);
  const next = await send(ann, 'mig-1', 'after', 'c-2');
  assert.equal(next.status, 'sent');
  const all = await history(ann, 'mig-1');
  assert.deepEqual(all.map((m) => [m.messageId, m.seq, m.content]),
    [[old, 1, 'before'], [next.messageId, 2, 'after']]);
  assert.deepEqual(all[1].sender, { id: 'ann', name: 'ann' });
  await srv.stop();
});

test('a database at schema version 2 is migrated to the latest version at start: its messages, keys, inbox and sequence go on', { skip }, async () => {
  const store = newDatabase();
  const sql = (text) => execFileSync('psql', [store, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', text],
    { encoding: 'utf8' }).trim();
  // Version 2 as a parley of that version left it, with one message sent
  // through its parley_send_as.
  for (const v of [1, 2]) {
    execFileSync('psql', [store, '-qX1', '-v', 'ON_ERROR_STOP=1', '-f',
      path.join(h.ROOT, 'core', 'store', `pg_schema_${v}.sql`)], { stdio: 'ignore' });
  }
  sql('CREATE TABLE parley_schema_version (version integer PRIMARY KEY, '
    + 'applied timestamptz NOT NULL DEFAULT now()); '
    + 'INSERT INTO parley_schema_version (version) VALUES (1), (2)');
  const old = sql(`SELECT message_id FROM parley_send_as('mig-2', 'ann', 'c-1', 'text', '"before"',
    NULL, NULL, NULL, NULL, NULL, true, '{bob}', 1764700000000, '2025-12-02T18:26:40.000Z')`);
  const srv = await start(store);
  assert.match(srv.logs(), /migrated .* to schema version 3/);
  assert.doesNotMatch(srv.logs(), /migrated .* to schema version 2/);
  assert.match(srv.logs(), new RegExp(`migrated .* to schema version ${LATEST}`));
  assert.equal(sql('SELECT max(version) FROM parley_schema_version'), String(LATEST));
  const ann = await client(srv, 'ann');
  const bob = await client(srv, 'bob');
  await putMembers(srv, 'mig-2', ['ann', 'bob']);
  // The old key answers the old message; sends at once go on after it,
  // gapless, through the new function (a batch: many in one statement).
  const b0 = await h.metric(srv, 'parley_pg_batches_total');
  const retry = await send(ann, 'mig-2', 'before', 'c-1');
  assert.equal(retry.messageId, old);
  const acks = await Promise.all(Array.from({ length: 30 }, (_, i) => send(ann, 'mig-2', `after ${i}`, `c-${i + 2}`)));
  assert.ok(acks.every((x) => x.status === 'sent'), JSON.stringify(acks));
  assert.ok(await h.metric(srv, 'parley_pg_batches_total') > b0, 'the sends went in batches');
  const all = await history(bob, 'mig-2');
  assert.deepEqual(all.map((m) => m.seq), Array.from({ length: 31 }, (_, i) => i + 1));
  assert.deepEqual(all.map((m) => m.messageId), [old, ...acks.map((x) => x.messageId)]);
  assert.deepEqual(all.map((m) => m.content), ['before', ...acks.map((_, i) => `after ${i}`)]);
  // bob's inbox: the conversation, its last message, 31 unread.
  const inbox = await bob.timeout(10000).emitWithAck('conversations:list', {});
  const item = inbox.conversations.find((x) => x.conversationId === 'mig-2');
  assert.ok(item, JSON.stringify(inbox));
  assert.equal(item.unreadCount, 31, JSON.stringify(item));
  assert.equal(item.lastMessage.messageId, acks[29].messageId, JSON.stringify(item));
  await srv.stop();
});

test('sends that go in one batch: refused, repeated and failing ones are answered as alone, the others committed gapless', { skip }, async () => {
  const store = newDatabase();
  const srv = await start(store);
  const sql = (text) => execFileSync('psql', [store, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', text],
    { encoding: 'utf8' }).trim();
  // A message PostgreSQL refuses: its send's statement fails, and with it
  // the batch it is in.
  sql(`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF NEW.content = '"boom"' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION boom()`);
  const ann = await client(srv, 'ann');
  const bob = await client(srv, 'bob');
  const eve = await client(srv, 'eve');
  await putMembers(srv, 'closed-1', ['ann', 'bob']);
  const b0 = await h.metric(srv, 'parley_pg_batches_total');
  const f0 = await h.metric(srv, 'parley_pg_batch_failures_total');
  const sends = [];
  for (let i = 0; i < 40; i++) {
    sends.push(send(ann, 'open-1', i === 20 ? 'boom' : `m${i}`, `k-${i}`));
    sends.push(send(ann, 'open-1', `again ${i}`, `k-${i}`)); // the same key: the same message
    sends.push(send(eve, 'closed-1', `no ${i}`, `e-${i}`));  // not a member: refused
    sends.push(send(bob, 'closed-1', `yes ${i}`, `b-${i}`));
  }
  const acks = await Promise.all(sends);
  assert.ok(await h.metric(srv, 'parley_pg_batches_total') > b0, 'the sends went in batches');
  assert.ok(await h.metric(srv, 'parley_pg_batch_failures_total') > f0, 'the failing send failed a batch');
  const anns = acks.filter((_, i) => i % 4 === 0), agains = acks.filter((_, i) => i % 4 === 1);
  // The failing send's error is its own; its key is not taken (its
  // transaction rolled back), so the send after it with that key is new.
  assert.equal(anns[20].status, 'error', JSON.stringify(anns[20]));
  assert.equal(anns[20].statusCode, 503, JSON.stringify(anns[20]));
  assert.equal(agains[20].status, 'sent', JSON.stringify(agains[20]));
  for (let i = 0; i < 40; i++) {
    if (i === 20) continue;
    assert.equal(anns[i].status, 'sent', JSON.stringify(anns[i]));
    assert.equal(agains[i].messageId, anns[i].messageId, `k-${i}: ${JSON.stringify([anns[i], agains[i]])}`);
  }
  for (const x of acks.filter((_, i) => i % 4 === 2)) {
    assert.equal(x.status, 'error', JSON.stringify(x));
    assert.equal(x.statusCode, 403, JSON.stringify(x));
  }
  const open = await history(bob, 'open-1');
  assert.deepEqual(open.map((m) => m.content), anns.map((_, i) => (i === 20 ? 'again 20' : `m${i}`)));
  assertGapless(open);
  const closed = await history(ann, 'closed-1');
  assert.deepEqual(closed.map((m) => m.content), Array.from({ length: 40 }, (_, i) => `yes ${i}`));
  assertGapless(closed);
  await srv.stop();
});

test('a send writes no status rows: a recipient without one is at sent, and rows at sent from before read the same', { skip }, async () => {
  const store = newDatabase();
  const srv = await start(store);
  const sql = (text) => execFileSync('psql', [store, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', text],
    { encoding: 'utf8' }).trim();
  await putMembers(srv, 'st-1', ['ann', 'bob', 'cat']);
  const [ann, bob, cat] = [await client(srv, 'ann'), await client(srv, 'bob'), await client(srv, 'cat')];
  const m1 = (await send(ann, 'st-1', 'one', 's-1')).messageId;
  const m2 = (await send(ann, 'st-1', 'two', 's-2')).messageId;
  assert.equal(sql("SELECT count(*) FROM statuses WHERE conversation_id = 'st-1'"), '0');
  const seen = async (id) => {
    const m = (await history(ann, 'st-1')).find((x) => x.messageId === id);
    return [m.status, m.statuses];
  };
  assert.deepEqual(await seen(m1), ['sent', { bob: 'sent', cat: 'sent' }]);
  const mark = (c, ev, id) => c.timeout(10000).emitWithAck(ev, { conversationId: 'st-1', messageIds: [id] });
  await mark(bob, 'message:delivered', m1);
  assert.deepEqual(await seen(m1), ['sent', { bob: 'delivered', cat: 'sent' }]);
  await mark(cat, 'message:read', m1);
  assert.deepEqual(await seen(m1), ['delivered', { bob: 'delivered', cat: 'read' }]);
  // Rows at sent as versions 1 to 3 wrote them at the send.
  sql(`INSERT INTO statuses SELECT conversation_id, seq, u.u, 1, 0, true, u.o
       FROM messages, unnest(recipients) WITH ORDINALITY AS u(u, o) WHERE message_id = '${m2}'`);
  assert.deepEqual(await seen(m2), ['sent', { bob: 'sent', cat: 'sent' }]);
  await mark(cat, 'message:delivered', m2);
  assert.deepEqual(await seen(m2), ['sent', { bob: 'sent', cat: 'delivered' }]);
  await mark(bob, 'message:read', m2);
  assert.deepEqual(await seen(m2), ['delivered', { bob: 'read', cat: 'delivered' }]);
  await srv.stop();
});

test('two processes on one database: a message sent through one is synced through the other', { skip }, async () => {
  const store = newDatabase();
  const a = await start(store);
  const b = await start(store);
  const ann = await client(a, 'ann');
  const bob = await client(b, 'bob');
  const ack = await send(ann, 'two-1', 'from a', 'c-1');
  assert.equal(ack.status, 'sent');
  const got = await history(bob, 'two-1');
  assert.equal(got.length, 1);
  assert.equal(got[0].messageId, ack.messageId);
  assert.equal(got[0].content, 'from a');
  assert.equal(got[0].seq, 1);
  // And back: the next number is the other process's next.
  const back = await send(bob, 'two-1', 'from b', 'c-2');
  const both = await history(ann, 'two-1');
  assert.deepEqual(both.map((m) => [m.messageId, m.seq]), [[ack.messageId, 1], [back.messageId, 2]]);
  await a.stop();
  await b.stop();
});

test('the same clientMessageId sent to both processes at once creates one message', { skip }, async () => {
  const store = newDatabase();
  const a = await start(store);
  const b = await start(store);
  const ann1 = await client(a, 'ann');
  const ann2 = await client(b, 'ann');
  for (let i = 0; i < 20; i++) {
    const [x, y] = await Promise.all([send(ann1, 'idem-1', `try ${i}`, `k-${i}`),
      send(ann2, 'idem-1', `try ${i}`, `k-${i}`)]);
    assert.equal(x.messageId, y.messageId, `key k-${i}: ${JSON.stringify([x, y])}`);
  }
  const all = await history(ann1, 'idem-1');
  assert.equal(all.length, 20);
  assertGapless(all);
  await a.stop();
  await b.stop();
});

test('concurrent sends into one conversation from both processes give a gapless sequence', { skip }, async () => {
  const store = newDatabase();
  const a = await start(store);
  const b = await start(store);
  const senders = [];
  for (let i = 0; i < 4; i++) senders.push(await client(i % 2 ? b : a, `u${i}`));
  const acks = await Promise.all(senders.flatMap((c, i) =>
    Array.from({ length: 50 }, (_, j) => send(c, 'race-1', `${i}-${j}`, `${i}-${j}`))));
  assert.ok(acks.every((x) => x.status === 'sent'), JSON.stringify(acks.find((x) => x.status !== 'sent')));
  const all = await history(senders[0], 'race-1');
  assert.equal(all.length, 200);
  assertGapless(all);
  assert.deepEqual(new Set(all.map((m) => m.messageId)), new Set(acks.map((x) => x.messageId)));
  await a.stop();
  await b.stop();
});

// Sends in a loop from `c` until stopped; resolves with the acks.
function load(c, conv) {
  const acked = [];
  let stop = false, i = 0;
  const done = (async () => {
    while (!stop) {
      const n = i++;
      let ack;
      try {
        ack = await send(c, conv, `m-${n}`, `l-${n}`, 3000);
      } catch (e) {
        return; // the connection went
      }
      if (ack && ack.status === 'sent') acked.push(ack);
    }
  })();
  return { acked, stop: async () => { stop = true; await done; } };
}

test('kill -9 of parley mid-load: every acked message is there, in order, with no gap', { skip }, async () => {
  const store = newDatabase();
  const a = await start(store);
  const c = await client(a, 'kim');
  const l = load(c, 'kill-1');
  await h.waitFor(() => l.acked.length, (n) => n >= 50, 'fifty acks', 20000);
  a.proc.kill('SIGKILL');
  await l.stop();
  const b = await start(store);
  const all = await history(await client(b, 'kim'), 'kill-1');
  assertGapless(all);
  const stored = new Set(all.map((m) => m.messageId));
  for (const ack of l.acked) assert.ok(stored.has(ack.messageId), `acked ${ack.messageId} is lost`);
  await b.stop();
});

test('PostgreSQL stopped immediately mid-load, then started: every acked message is there, in order, no gap; while it is down sends get a 503 error, never an ack', { skip, timeout: 120000 }, async () => {
  const store = newDatabase();
  const a = await start(store);
  const c = await client(a, 'pam');
  const l = load(c, 'crash-1');
  await h.waitFor(() => l.acked.length, (n) => n >= 50, 'fifty acks', 20000);
  let down;
  try {
    pgStopImmediate();
    // While it is down: an error, never an ack. (The first sends may still
    // have been in flight: those may be refused too, never falsely acked.)
    down = await send(c, 'crash-1', 'while down', 'down-1');
    const err = await new Promise((resolve) => {
      c.once('error', resolve);
      c.emit('message:send', msg('crash-1', 'while down, no ack', 'down-2'));
    });
    assert.equal(err.statusCode, 503, JSON.stringify(err));
  } finally {
    pgStart();
  }
  await l.stop();
  assert.equal(a.proc.exitCode, null, `parley exited:\n${a.logs()}`);
  assert.equal(down.status, 'error', JSON.stringify(down));
  assert.equal(down.statusCode, 503);
  assert.match(down.message, /^the message store is unavailable/);
  // It reconnects by itself and carries on.
  const health = async () => {
    try {
      return (await fetch(`${a.url}/healthz`)).status;
    } catch (e) {
      return `${e.message}: ${e.cause && e.cause.message}`;
    }
  };
  await h.waitFor(health, (st) => st === 200, 'healthz 200 again', 30000);
  const after = await send(c, 'crash-1', 'after', 'after-1');
  assert.equal(after.status, 'sent', JSON.stringify(after));
  const all = await history(c, 'crash-1');
  assertGapless(all);
  const stored = new Set(all.map((m) => m.messageId));
  for (const ack of [...l.acked, after]) assert.ok(stored.has(ack.messageId), `acked ${ack.messageId} is lost`);
  await a.stop();
});

test.after(() => {
  if (pgStopped) pgStart();
  return h.cleanup();
});
