// guard.test.js - runaway scripts are stopped (STYLE.md 16): a handler that
// loops forever (an interpreted loop, a loop LuaJIT would compile, a loop
// that catches the stop with pcall, a pattern that backtracks without end)
// or allocates without bound fails only its own event, with a 500 error,
// within its budget; everyone else is served.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const BUDGET_MS = 100;
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

// Emits `event` and returns the ack and the error event it caused.
async function runaway(event) {
  const s = h.sioClient(srv, '/messages', { query: { userId: `runner-${event}` }, transports: ['websocket'] });
  await h.connected(s);
  const error = h.once(s, 'error');
  const started = Date.now();
  const ack = await s.timeout(5000).emitWithAck(event, {});
  const took = Date.now() - started;
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
  test(`${what} (${event}) is stopped after the ${BUDGET_MS} ms budget: ack and error event are 500, the bystander still talks`, async () => {
    const stoppedBefore = await metric('parley_lua_stopped_total');
    const { ack, err, took } = await runaway(event);
    assert.deepEqual(ack, { status: 'error', message: 'a script took too long', statusCode: 500 });
    assert.equal(err.statusCode, 500);
    assert.ok(took >= BUDGET_MS * 0.9 && took < 2000, `stopped after ${took} ms`);
    assert.equal(await metric('parley_lua_stopped_total'), stoppedBefore + 1);
    assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
  });
}

// Inside one call of a C function no hook runs: parley's own pattern
// matcher asks the guard as it goes (core/lua/pattern.c). No timing assertion
// here: that the 500 arrives at all is the proof (without it, the server
// hung: LuaJIT's matcher would take years on these).
for (const [event, what] of [
  ['test:pattern', 'string.find backtracking without end (".-" six times on 2000 bytes)'],
  ['test:pattern-pcall', 'the same find, and a match, behind pcall and xpcall'],
  ['test:gsub-spin', 'gsub whose replacement function loops forever'],
]) {
  test(`${what} (${event}) is stopped: ack and error event are 500, the stop is counted, the bystander still talks`, async () => {
    const stoppedBefore = await metric('parley_lua_stopped_total');
    const { ack, err } = await runaway(event);
    assert.deepEqual(ack, { status: 'error', message: 'a script took too long', statusCode: 500 });
    assert.equal(err.statusCode, 500);
    assert.equal(await metric('parley_lua_stopped_total'), stoppedBefore + 1);
    assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  });
}

test('a handler that allocates without bound (test:hog) fails with 500 once it has added 8 MiB to the heap', async () => {
  const before = await metric('parley_lua_memory_refusals_total');
  const { ack } = await runaway('test:hog');
  assert.equal(ack.statusCode, 500);
  assert.ok(await metric('parley_lua_memory_refusals_total') > before, 'no allocation was refused');
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
});

test('a handler that catches its memory errors and allocates again (test:hog-pcall) cannot go on: 500 within 2 s', async () => {
  // Whichever budget ends it (the memory error escapes the closure it
  // cannot allocate, or the loop runs out its time), it ends.
  const { ack, took } = await runaway('test:hog-pcall');
  assert.equal(ack.statusCode, 500, JSON.stringify(ack));
  assert.ok(took < 2000, `took ${took} ms`);
});

test('scripts keep their own pcall: test:catch sees its error', async () => {
  assert.deepEqual(await bystander.timeout(2000).emitWithAck('test:catch'),
    { ok: false, err: 'mine' });
});

test('the log names the handler that was stopped', async () => {
  assert.match(srv.logs(), /testkit: handler for test:spin was stopped: it ran longer than the script time budget/);
});
