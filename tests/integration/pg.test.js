// pg.test.js - the store on PostgreSQL, as an operator meets it (issue 18):
// PostgreSQL unreachable at start is a clear error naming the URI with its
// password masked, and a non-zero exit; a database whose schema is newer
// than the binary's is refused; while PostgreSQL is gone /healthz answers
// 503 with the reason and parley_pg_up is 0, and once it is back parley
// reconnects by itself. Each test that needs a server runs a private
// PostgreSQL of its own (tests/pg.sh), which it stops and starts at will.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const PG_BIN = '/usr/lib/postgresql/15/bin';
const PG_SH = path.join(h.ROOT, 'tests', 'pg.sh');
const noPg = fs.existsSync(path.join(PG_BIN, 'initdb')) ? false
  : `PostgreSQL 15 is not installed (${PG_BIN}; tests/deps.sh --test installs it)`;

let pgDir = null;
let base = null;
test.after(() => {
  if (pgDir) execFileSync('bash', [PG_SH, 'stop', pgDir]);
  h.cleanup();
});

// The private PostgreSQL, started on first use: its base URI.
function pgStart() {
  if (!pgDir) pgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-pgtest-'));
  base = execFileSync('bash', [PG_SH, 'start', pgDir], { encoding: 'utf8' }).trim();
  return base;
}
const pgStop = () => execFileSync('bash', [PG_SH, 'stop', pgDir]);
const psql = (uri, sql) => execFileSync('psql', [uri, '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', sql],
  { encoding: 'utf8' }).trim();

// A new database on the private PostgreSQL: its URI.
function database(name) {
  psql(base, `CREATE DATABASE ${name}`);
  return base.replace(/^(\w+:\/\/[^/]*\/)[^?]*/, `$1${name}`);
}

async function healthz(srv) {
  const r = await fetch(`${srv.url}/healthz`);
  return { status: r.status, body: await r.json() };
}

test('PostgreSQL unreachable at start: exit 1, and the message names the URI with its password masked (in the userinfo and in a password parameter)', async () => {
  const dataDir = path.join(os.tmpdir(), `parley-pg-nodir-${process.pid}`);
  for (const uri of ['postgresql://alice:hunter2-secret@/nodb?host=/nonexistent-dir',
    'postgres://alice@/nodb?host=/nonexistent-dir&password=hunter2-secret']) {
    const p = await h.spawnParley({ dataDir, env: { PARLEY_STORE: uri } });
    const st = await p.exited;
    const out = p.logs();
    assert.equal(st.code, 1, out);
    assert.match(out, /PostgreSQL unreachable at postgres(ql)?:\/\/alice(:\*\*\*)?@\/nodb\?host=\/nonexistent-dir/, out);
    assert.doesNotMatch(out, /hunter2/, 'the password is never logged');
    assert.doesNotMatch(out, /listening/);
  }
  // The LMDB data directory is neither claimed nor created on PostgreSQL.
  assert.equal(fs.existsSync(dataDir), false);
});

test('PARLEY_STORE that is neither lmdb nor a PostgreSQL URI is refused at start naming the setting; lmdb is LMDB', async () => {
  const p = await h.spawnParley({ env: { PARLEY_STORE: 'mysql://bob:pw-secret@db/x' } });
  const st = await p.exited;
  assert.equal(st.code, 2, p.logs());
  assert.match(p.logs(), /PARLEY_STORE.*expected lmdb, or a PostgreSQL URI/);
  assert.doesNotMatch(p.logs(), /pw-secret/);
  const srv = await h.startParley({ env: { PARLEY_STORE: 'lmdb' } });
  assert.ok(fs.existsSync(path.join(srv.dataDir, 'data.mdb')), 'lmdb: the store is LMDB');
  assert.equal(await h.metric(srv, 'parley_pg_up'), null, 'no PostgreSQL metrics on LMDB');
  await srv.stop();
});

test('a database whose schema version is newer than this parley knows is refused with a clear message, exit 1', { skip: noPg }, async () => {
  pgStart();
  const uri = database('parley_newer');
  // A first start creates the schema (and records its version).
  const srv = await h.startParley({ env: { PARLEY_STORE: uri } });
  assert.match(srv.logs(), /migrated .* to schema version 1/);
  await srv.stop();
  const known = Number(psql(uri, 'SELECT max(version) FROM parley_schema_version'));
  assert.ok(known >= 1);
  // Started again: nothing to migrate.
  const again = await h.startParley({ env: { PARLEY_STORE: uri } });
  assert.doesNotMatch(again.logs(), /migrated/);
  await again.stop();
  psql(uri, `INSERT INTO parley_schema_version (version) VALUES (${known + 1})`);
  const p = await h.spawnParley({ env: { PARLEY_STORE: uri } });
  const st = await p.exited;
  assert.equal(st.code, 1, p.logs());
  assert.match(p.logs(), new RegExp(`schema version ${known + 1}, newer than this parley knows \\(${known}\\)`));
  assert.doesNotMatch(p.logs(), /listening/);
});

test('PostgreSQL stopped (immediate) while parley runs: /healthz answers 503 with the reason and parley_pg_up is 0; once it is back, parley reconnects by itself: 200, parley_pg_up 1, a reconnect counted', { skip: noPg, timeout: 60000 }, async () => {
  pgStart();
  const uri = database('parley_healthz');
  const srv = await h.startParley({ env: { PARLEY_STORE: uri } });
  assert.equal((await healthz(srv)).status, 200);
  assert.equal(await h.metric(srv, 'parley_pg_up'), 1);
  assert.equal(await h.metric(srv, 'parley_pg_reconnects_total'), 0);
  assert.equal(await h.metric(srv, 'parley_pg_queue_depth'), 0);
  for (const series of ['parley_pg_transactions_total', 'parley_pg_statements_total',
    'parley_pg_failures_total{kind="statement"}', 'parley_pg_failures_total{kind="unavailable"}',
    'parley_pg_retries_total']) {
    assert.equal(typeof await h.metric(srv, series), 'number', series);
  }

  pgStop();
  const down = await h.waitFor(() => healthz(srv), (r) => r.status === 503, '/healthz 503 once PostgreSQL is gone');
  assert.equal(down.body.status, 'unavailable');
  assert.match(down.body.reason, /^PostgreSQL unreachable: /);
  assert.equal(await h.metric(srv, 'parley_pg_up'), 0);
  assert.match(srv.logs(), /error pg: PostgreSQL unreachable: the connection was lost/);

  pgStart();
  await h.waitFor(() => healthz(srv), (r) => r.status === 200, '/healthz 200 again once PostgreSQL is back', 20000);
  assert.equal(await h.metric(srv, 'parley_pg_up'), 1);
  assert.equal(await h.metric(srv, 'parley_pg_reconnects_total'), 1);
  assert.match(srv.logs(), /pg: connected again to postgresql:\/\/postgres@\/parley_healthz/);
  const st = await srv.stop();
  assert.equal(st.code, 0);
});

test('SIGTERM on PostgreSQL: the drain sees the store settle (nothing queued or in flight) and does not wait out PARLEY_SHUTDOWN_TIMEOUT', { skip: noPg, timeout: 60000 }, async () => {
  pgStart();
  const uri = database('parley_drain');
  const srv = await h.startParley({ env: { PARLEY_STORE: uri, PARLEY_SHUTDOWN_TIMEOUT: '60000' } });
  const st = await srv.stop();
  assert.equal(st.code, 0);
  assert.match(srv.logs(), /stopping: every client told/);
  assert.doesNotMatch(srv.logs(), /did not settle/);
});
