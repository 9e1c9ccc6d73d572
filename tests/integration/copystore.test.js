// copystore.test.js - `parley copy-store URI` (docs/storage-postgresql.md):
// a store filled through a real parley on LMDB (messages with their keys,
// statuses, reads, members, a profile, reactions, an edit, a hide, plugin
// kv, last seen), copied into an empty PostgreSQL database, then served by
// a parley on PostgreSQL: every message as messages:sync gave it on LMDB,
// the inbox the same, an old clientMessageId still the same message, the
// next message the next seq. A copy killed half way is resumed by running
// the command again; a database holding anything else is refused.
// Needs PostgreSQL: runs in tests/run.sh's PostgreSQL pass (PARLEY_TEST_PG).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const h = require('./harness');

test.after(h.cleanup);

const skip = h.PG ? {} : { skip: 'needs PostgreSQL: PARLEY_TEST_PG (tests/run.sh sets it)' };
const KEY = 'copy-store-test-key';
const tmp = (what) => fs.mkdtempSync(path.join(os.tmpdir(), `parley-copy-${what}-`));
const asan = process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS } : {};

// A parley on LMDB (PARLEY_STORE '' overrides the harness's PostgreSQL).
const onLmdb = (dataDir) => h.startParley({ dataDir, env: {
  PARLEY_STORE: '', PARLEY_API_KEY: KEY, PARLEY_PLUGINS: 'testkit,kvpeer,reactions,edits' } });
// A parley on the PostgreSQL database `uri`.
const onPg = (uri) => h.startParley({ env: {
  PARLEY_STORE: uri, PARLEY_API_KEY: KEY, PARLEY_PLUGINS: 'testkit,kvpeer,reactions,edits' } });

// `parley copy-store uri` on dataDir: { code, out } (stdout and stderr).
function copyStore(dataDir, uri, onSpawn) {
  return new Promise((resolve) => {
    const p = spawn(h.BINARY, ['copy-store', uri], {
      cwd: h.ROOT, env: { PATH: process.env.PATH, PARLEY_DATA_DIR: dataDir, ...asan } });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code, signal) => resolve({ code, signal, out }));
    if (onSpawn) onSpawn(p);
  });
}

const psql = (uri, sql) => execFileSync('psql', [uri, '-qAtX', '-c', sql],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

const client = (srv, userId) => h.connected(h.sioClient(srv, '/messages',
  { query: { userId }, transports: ['websocket'] }));

// Every message of a conversation as `userId` syncs it.
async function history(srv, conversationId, userId = 'alice') {
  const s = await client(srv, userId);
  const all = [];
  let after;
  for (;;) {
    const page = await s.timeout(5000).emitWithAck('messages:sync', { conversationId, after, limit: 500 });
    all.push(...page.messages);
    if (!page.hasMore) break;
    after = page.messages[page.messages.length - 1].messageId;
  }
  s.close();
  return all;
}

async function inbox(srv, userId) {
  const s = await client(srv, userId);
  const page = await s.timeout(5000).emitWithAck('conversations:list', { limit: 50 });
  s.close();
  return page;
}

const api = (srv, method, p, body) => fetch(srv.url + p, { method,
  headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
  body: body && JSON.stringify(body) });

// Fills an LMDB store with one of everything the copy moves.
async function fill(srv, messages = 40) {
  assert.equal((await api(srv, 'PUT', '/api/conversations/team/members', { members: ['alice', 'bob', 'carol'] })).status, 200);
  assert.equal((await api(srv, 'PUT', '/api/users/alice', { name: 'Alice "A"', avatar: 'a.png' })).status, 200);
  const a = await client(srv, 'alice');
  const b = await client(srv, 'bob');
  for (const s of [a, b]) await s.timeout(5000).emitWithAck('conversation:join', { conversationId: 'team' });
  await a.timeout(5000).emitWithAck('conversation:join', { conversationId: 'open' });
  const acks = [];
  for (let i = 0; i < messages; i++) {
    const [s, conv] = i % 3 ? [a, 'team'] : [b, i % 2 ? 'team' : 'open'];
    acks.push(await s.timeout(5000).emitWithAck('message:send',
      { conversationId: conv, clientMessageId: `k${i}`, type: 'text', content: `hello ${i} "quoted" \\ é` }));
  }
  const team = acks.filter((x, i) => i % 3);
  assert.ok(acks.every((x) => x.messageId), JSON.stringify(acks.find((x) => !x.messageId)));
  await b.timeout(5000).emitWithAck('message:delivered', { conversationId: 'team', messageIds: team.slice(0, 5).map((x) => x.messageId) });
  await b.timeout(5000).emitWithAck('conversation:read', { conversationId: 'team', upToMessageId: team[3].messageId });
  const ok = async (s, event, data) => {
    const ack = await s.timeout(5000).emitWithAck(event, data);
    assert.equal(ack && ack.success, true, `${event}: ${JSON.stringify(ack)}`);
  };
  await ok(b, 'reaction:add', { conversationId: 'team', messageId: team[1].messageId, emoji: '👍' });
  await ok(a, 'message:edit', { messageId: team[2].messageId, content: 'edited' });
  await ok(a, 'message:delete', { messageId: team[4].messageId, forEveryone: true });
  await ok(b, 'message:delete', { messageId: team[5].messageId });
  assert.equal(await a.timeout(5000).emitWithAck('peer:set', { key: 'bin', value: { bytes: 'x\u0000y', n: 7 } }), true);
  a.close();
  b.close();
  return acks;
}

test('copy-store moves an LMDB store into PostgreSQL: every count checked, then served the same', { ...skip, timeout: 120000 }, async () => {
  const dataDir = tmp('data');
  const lmdb = await onLmdb(dataDir);
  const acks = await fill(lmdb);
  const before = { team: await history(lmdb, 'team'), teamBob: await history(lmdb, 'team', 'bob'),
    open: await history(lmdb, 'open'), inbox: await inbox(lmdb, 'bob') };
  assert.equal((await lmdb.stop()).code, 0);

  const uri = h.pgStore(null);
  const r = await copyStore(dataDir, uri);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /messages +40 in LMDB +40 in PostgreSQL +ok/);
  assert.match(r.out, /statuses +\d+ in LMDB +\d+ in PostgreSQL +ok/);
  assert.match(r.out, /annotations +1 in LMDB +1 in PostgreSQL +ok/);
  assert.match(r.out, /hides +1 in LMDB +1 in PostgreSQL +ok/);
  assert.match(r.out, /idempotency keys +40 in LMDB +40 in PostgreSQL +ok/);
  assert.match(r.out, /members +3 in LMDB +3 in PostgreSQL +ok/);
  assert.match(r.out, /profiles +1 in LMDB +1 in PostgreSQL +ok/);
  assert.match(r.out, /last seen +[1-9]\d* in LMDB +\d+ in PostgreSQL +ok/);
  assert.match(r.out, /read cursors +1 in LMDB +1 in PostgreSQL +ok/);
  assert.match(r.out, /plugin kv +2 in LMDB +2 in PostgreSQL +ok/); // peer:set's and the reactions'
  assert.match(r.out, /conversations +2 in LMDB +2 in PostgreSQL +ok/);
  assert.match(r.out, /every count matches/);
  assert.doesNotMatch(r.out, /DIFFERENT/);

  const pg = await onPg(uri);
  assert.deepEqual(await history(pg, 'team'), before.team, 'the team conversation as alice syncs it');
  assert.deepEqual(await history(pg, 'team', 'bob'), before.teamBob, 'as bob (who hid one) syncs it');
  assert.deepEqual(await history(pg, 'open'), before.open);
  assert.deepEqual(await inbox(pg, 'bob'), before.inbox);
  const a = await client(pg, 'alice');
  // An old key is still the same message; a new one takes the next seq.
  const again = await a.timeout(5000).emitWithAck('message:send', { conversationId: 'team', clientMessageId: 'k1', type: 'text', content: 'retry' });
  assert.equal(again.messageId, acks[1].messageId, JSON.stringify(again));
  const next = await a.timeout(5000).emitWithAck('message:send', { conversationId: 'team', clientMessageId: 'after-copy', type: 'text', content: 'new' });
  const synced = await history(pg, 'team');
  assert.equal(synced[synced.length - 1].messageId, next.messageId);
  assert.equal(synced[synced.length - 1].seq, before.team[before.team.length - 1].seq + 1);
  assert.deepEqual(await a.timeout(5000).emitWithAck('peer:get', { key: 'bin' }), { value: { bytes: 'x\u0000y', n: 7 } });
  // The profile came along: a new message's sender is filled from it.
  assert.equal(synced[synced.length - 1].sender.avatar, 'a.png');
  a.close();
  assert.equal((await pg.stop()).code, 0);

  // Once more, after the server wrote there: nothing is copied over what
  // it wrote (the profile it may have changed, ...).
  const twice = await copyStore(dataDir, uri);
  assert.equal(twice.code, 0, twice.out);
  assert.match(twice.out, /was already copied into .*: nothing done/);
  assert.equal(psql(uri, 'SELECT count(*) FROM messages'), '41');
});

test('a copy killed half way is resumed by running it again', { ...skip, timeout: 180000 }, async () => {
  const dataDir = tmp('big');
  const lmdb = await onLmdb(dataDir);
  const senders = await Promise.all([0, 1, 2, 3].map((i) => client(lmdb, `s${i}`)));
  const total = 6000;
  await Promise.all(senders.map(async (s, i) => {
    for (let n = i; n < total; n += senders.length) {
      await s.timeout(5000).emitWithAck('message:send', { conversationId: `c${n % 7}`, clientMessageId: `m${n}`, type: 'text', content: `message ${n}` });
    }
  }));
  const before = await history(lmdb, 'c3', 's0');
  assert.equal((await lmdb.stop()).code, 0);

  const uri = h.pgStore(null);
  // Killed once the first chunk of messages is committed.
  let proc;
  const first = copyStore(dataDir, uri, (p) => { proc = p; });
  await h.waitFor(() => {
    try { return Number(psql(uri, 'SELECT count(*) FROM messages')); } catch (_) { return 0; }
  }, (n) => n >= 1000, 'the copy committed its first messages', 60000);
  proc.kill('SIGKILL');
  const killed = await first;
  assert.equal(killed.signal, 'SIGKILL', killed.out);
  assert.equal(psql(uri, 'SELECT finished FROM parley_copy'), 'f', 'the copy was interrupted before it finished');
  const partial = Number(psql(uri, 'SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM idempotency)'));
  assert.ok(partial < 2 * total, `a part of the rows was copied (${partial})`);

  const resumed = await copyStore(dataDir, uri);
  assert.equal(resumed.code, 0, resumed.out);
  assert.match(resumed.out, new RegExp(`messages +${total} in LMDB +${total} in PostgreSQL +ok`));
  assert.match(resumed.out, new RegExp(`idempotency keys +${total} in LMDB +${total} in PostgreSQL +ok`));
  assert.match(resumed.out, /every count matches/);
  assert.equal(psql(uri, 'SELECT finished FROM parley_copy'), 't');
  const pg = await onPg(uri);
  assert.deepEqual(await history(pg, 'c3', 's0'), before);
  assert.equal((await pg.stop()).code, 0);
});

test('copy-store refuses a database holding anything else, a directory with no store, and no URI', { ...skip, timeout: 60000 }, async () => {
  // A database a parley on PostgreSQL already wrote.
  const uri = h.pgStore(null);
  const pg = await onPg(uri);
  const s = await client(pg, 'zed');
  await s.timeout(5000).emitWithAck('message:send', { conversationId: 'z', type: 'text', content: 'mine' });
  s.close();
  assert.equal((await pg.stop()).code, 0);
  const dataDir = tmp('small');
  const lmdb = await onLmdb(dataDir);
  await fill(lmdb, 12);
  assert.equal((await lmdb.stop()).code, 0);
  const r = await copyStore(dataDir, uri);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /is not empty \(and holds no unfinished copy of .*\): copy into an empty database/);
  assert.equal(psql(uri, 'SELECT count(*) FROM messages'), '1', 'nothing was copied into it');

  const none = await copyStore(tmp('none'), h.pgStore(null));
  assert.equal(none.code, 1);
  assert.match(none.out, /no LMDB store in .*parley-copy-none/);
  const usage = spawnSync(h.BINARY, ['copy-store'], { cwd: h.ROOT, encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage: parley copy-store postgresql:\/\//);
});

test('copy-store while parley runs on the directory is refused (the directory is claimed)', { ...skip, timeout: 60000 }, async () => {
  const dataDir = tmp('busy');
  const lmdb = await onLmdb(dataDir);
  const r = await copyStore(dataDir, h.pgStore(null));
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /the data directory .* is in use by another parley \(pid \d+\)/);
  assert.equal((await lmdb.stop()).code, 0);
});
