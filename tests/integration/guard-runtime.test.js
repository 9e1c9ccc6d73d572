// guard-runtime.test.js - the guard stops scripts, never the runtime's own
// code (core/lua/runtime/*.lua, core/lua/binary.lua), whichever file of it
// is running once a call's budget is spent. One call into Lua resumes every
// job whose writes became durable in a round of commits: here the first of
// them spins and is stopped, which spends the call's budget, and the
// runtime then resumes the 40 others, each a wait tail-called by its
// handler, so that after the resume only runtime code runs (the wait's
// return, the handler's answer, its ack): thousands of instructions with
// the guard's hook firing every thousand. Were any of the runtime's files
// unknown to the guard (their chunk names are listed in core/lua/script.c),
// it would stop them there and those acks would be 500s.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const h = require('./harness');

const WAITERS = 40;
let srv;
let holder;

test.after(async () => {
  if (holder && holder.exitCode === null) holder.kill('SIGKILL');
  if (srv) await srv.stop();
});

// Holds the store's write lock from another process (build/lmdb_hold):
// parley's writer cannot commit until release() is called.
async function holdStore(dataDir) {
  holder = spawn(path.join(path.dirname(h.BINARY), 'lmdb_hold'), [dataDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    holder.stdout.once('data', (d) => (String(d).startsWith('held') ? resolve() : reject(new Error(String(d)))));
    holder.once('exit', (code) => reject(new Error(`lmdb_hold exited with ${code}`)));
  });
  return () => { holder.stdin.end(); return new Promise((resolve) => holder.once('exit', resolve)); };
}

test(`the guard never stops the runtime: after a resumed job is stopped, the runtime resumes ${WAITERS} more in the same call and answers each`, { timeout: 60000, ...h.lmdbOnly('holds the LMDB write lock (lmdb_hold) to keep writes in flight') }, async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-guard-runtime-'));
  srv = await h.startParley({ dataDir, env: { PARLEY_SCRIPT_TIMEOUT: '100' } });
  const spinner = h.sioClient(srv, '/messages', { query: { userId: 'spinner' }, transports: ['websocket'] });
  const waiter = h.sioClient(srv, '/messages', { query: { userId: 'waiter' }, transports: ['websocket'] });
  await h.connected(spinner);
  await h.connected(waiter);
  const stopped = async () => {
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    return Number(text.split('\n').find((l) => l.startsWith('parley_lua_stopped_total ')).split(' ').pop());
  };
  const stoppedBefore = await stopped();

  const release = await holdStore(dataDir);
  // A write the store's writer takes and then waits with for the lock:
  // what is submitted after it commits together, in one round.
  assert.deepEqual(await waiter.timeout(5000).emitWithAck('test:kv-set', { key: 'first', value: 1 }), { value: 1 });
  const spun = spinner.timeout(20000).emitWithAck('test:wait-spin', {});
  // Events of a socket are taken in order: once this answers, the spinner waits.
  assert.equal(await spinner.timeout(5000).emitWithAck('test:echo', 'after'), 'after');
  const waited = [];
  for (let i = 0; i < WAITERS; i++) waited.push(waiter.timeout(20000).emitWithAck('test:wait-tail', {}));
  assert.equal(await waiter.timeout(5000).emitWithAck('test:echo', 'after'), 'after');
  await release();

  assert.deepEqual(await spun, { status: 'error', message: 'a script took too long', statusCode: 500 });
  const answers = await Promise.all(waited);
  assert.deepEqual(answers.filter((a) => a !== true), [], `answers other than true:\n${srv.logs()}`);
  assert.equal(await stopped(), stoppedBefore + 1, srv.logs());
  assert.doesNotMatch(srv.logs(), /runtime: a job failed/);
  assert.equal(await waiter.timeout(2000).emitWithAck('test:echo', 'still here'), 'still here');
  spinner.close();
  waiter.close();
});
