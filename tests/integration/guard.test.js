// guard.test.js - runaway scripts are stopped (STYLE.md 16): a handler that
// loops forever (an interpreted loop, a loop LuaJIT would compile, a loop
// that catches the stop with pcall, a pattern that backtracks without end)
// or allocates without bound fails only its own event, with a 500 error,
// within a small multiple of its budget; everyone else is served. How long
// a stopped call ran is the server's own account (its "stopped after N ms"
// log line, timed around the call), not the client's clock: a busy test
// machine delays the ack, not the guard.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const BUDGET_MS = 200;
let srv;
let bystander;

test.before(async () => {
  srv = await h.startParley({ env: { PARLEY_SCRIPT_TIMEOUT: String(BUDGET_MS),
    PARLEY_SCRIPT_MEMORY: String(8 << 20) } });
  bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(bystander);
});
test.after(async () => {
  bystander.close();
  assert.equal((await srv.stop()).code, 0);
});

async function metric(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : NaN;
}

// An event that waited behind its socket's earlier job (one waiting for a
// store read: PostgreSQL) starts in the call that resumed that job.
const STOP_LINE = /guard: a call into Lua \((?:event|resume)\) was stopped after (\d+) ms; the budget is (\d+) ms/g;

// The "stopped after N ms" of each stop the log holds so far.
function stops() {
  return [...srv.logs().matchAll(STOP_LINE)].map((m) => Number(m[1]));
}

// Resolves once the log holds more than `n` stops (the line is written as
// the call returns; the pipe may bring it after the ack).
async function stopLogged(n) {
  const deadline = Date.now() + 5000;
  while (stops().length <= n) {
    if (Date.now() > deadline) assert.fail(`no "stopped after N ms" line:\n${srv.logs()}`);
    await h.sleep(10);
  }
  return stops()[n];
}

// Asserts the stop came after the budget and before three times it.
function assertStoppedInTime(ms, what) {
  assert.ok(ms >= BUDGET_MS && ms < 3 * BUDGET_MS,
    `${what} was stopped after ${ms} ms; its budget is ${BUDGET_MS} ms (expected ${BUDGET_MS}..${3 * BUDGET_MS - 1})`);
}

// Emits `event` and returns the ack, the error event it caused, and how
// long the guard says the call ran (null: no time stop was logged).
async function runaway(event, { timeStop = true } = {}) {
  const s = h.sioClient(srv, '/messages', { query: { userId: `runner-${event}` }, transports: ['websocket'] });
  await h.connected(s);
  const error = h.once(s, 'error', 10000);
  const logged = stops().length;
  const ack = await s.timeout(10000).emitWithAck(event, {});
  const took = timeStop ? await stopLogged(logged) : null;
  const err = await error;
  // The socket that ran it is still connected and served.
  assert.deepEqual(await s.timeout(2000).emitWithAck('test:echo', 'after'), 'after');
  s.close();
  return { ack, err, took };
}

for (const [event, what] of [
  ['test:spin', 'an interpreted infinite loop'],
  ['test:hot', 'a numeric for loop LuaJIT would compile'],
  ['test:spin-pcall', 'a loop that wraps the inner loop in pcall and xpcall'],
]) {
  test(`${what} (${event}) is stopped after its ${BUDGET_MS} ms budget and before three times it: ack and error event are 500, the bystander still talks`, async () => {
    const stoppedBefore = await metric('parley_lua_stopped_total');
    const { ack, err, took } = await runaway(event);
    assert.deepEqual(ack, { status: 'error', message: 'a script took too long', statusCode: 500 });
    assert.equal(err.statusCode, 500);
    assertStoppedInTime(took, event);
    assert.equal(await metric('parley_lua_stopped_total'), stoppedBefore + 1);
    assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
  });
}

// Inside one call of a C function no hook runs: parley's own pattern
// matcher asks the guard as it goes (core/lua/pattern.c). Without it the
// server hung: LuaJIT's matcher would take years on these.
for (const [event, what] of [
  ['test:pattern', 'string.find backtracking without end (".-" six times on 2000 bytes)'],
  ['test:pattern-pcall', 'the same find, and a match, behind pcall and xpcall'],
  ['test:gsub-spin', 'gsub whose replacement function loops forever'],
]) {
  test(`${what} (${event}) is stopped within three times the budget: ack and error event are 500, the stop is counted, the bystander still talks`, async () => {
    const stoppedBefore = await metric('parley_lua_stopped_total');
    const { ack, err, took } = await runaway(event);
    assert.deepEqual(ack, { status: 'error', message: 'a script took too long', statusCode: 500 });
    assert.equal(err.statusCode, 500);
    assertStoppedInTime(took, event);
    assert.equal(await metric('parley_lua_stopped_total'), stoppedBefore + 1);
    assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  });
}

test('a handler that allocates without bound (test:hog) fails with 500 once it has added 8 MiB to the heap', async () => {
  const before = await metric('parley_lua_memory_refusals_total');
  const { ack } = await runaway('test:hog', { timeStop: false });
  assert.equal(ack.statusCode, 500);
  assert.ok(await metric('parley_lua_memory_refusals_total') > before, 'no allocation was refused');
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
});

test('a handler that catches its memory errors and allocates again (test:hog-pcall) cannot go on: 500, by the memory budget or within three times the time budget', async () => {
  // Whichever budget ends it (the memory error escapes the closure it
  // cannot allocate, or the loop runs out its time), it ends, and the
  // guard's counters say which.
  const stopped = await metric('parley_lua_stopped_total');
  const refused = await metric('parley_lua_memory_refusals_total');
  const logged = stops().length;
  const { ack } = await runaway('test:hog-pcall', { timeStop: false });
  assert.equal(ack.statusCode, 500, JSON.stringify(ack));
  if (await metric('parley_lua_stopped_total') > stopped) {
    assertStoppedInTime(await stopLogged(logged), 'test:hog-pcall');
  } else {
    assert.ok(await metric('parley_lua_memory_refusals_total') > refused, 'neither budget stopped it');
  }
});

test('scripts keep their own pcall: test:catch sees its error', async () => {
  assert.deepEqual(await bystander.timeout(2000).emitWithAck('test:catch'),
    { ok: false, err: 'mine' });
});

test('the log names the handler that was stopped, its socket and its user', async () => {
  assert.match(srv.logs(), /testkit: handler for test:spin \(socket [\w-]+, user runner-test:spin\) was stopped: it ran longer than the script time budget/);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
