// timers.test.js - a timer cannot keep the loop busy: a timer callback the
// guard stops is not run again (its repeating timer is cancelled, and so is
// every timer it set during that run), and a 0 ms timer waits 1 ms (10 ms
// between the runs of a repeating one). Counts and order only: a timer set
// later (tests/plugins/misbehave's misbehave:runs-after) reports what ran
// before it came due, and the bounds follow from when each timer is due.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

let srv;
let client;
let bystander;

// Each test has a server of its own: a timer left running by one (before
// this was fixed, the spinning ones) would skew the counts of the next.
test.beforeEach(async () => {
  srv = await h.startParley({ env: { PARLEY_PLUGINS: 'testkit,misbehave', PARLEY_SCRIPT_TIMEOUT: '100' } });
  client = h.sioClient(srv, '/messages', { query: { userId: 'timers' }, transports: ['websocket'] });
  bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(client);
  await h.connected(bystander);
});
test.afterEach(async () => {
  client.close();
  bystander.close();
  const st = await srv.stop();
  assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
});

async function metric(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

// The counters as they were when a one-shot timer set now, `ms` later, ran.
async function runsAfter(ms) {
  const runs = h.once(client, 'misbehave:runs', 5000);
  assert.equal(await client.timeout(5000).emitWithAck('misbehave:runs-after', { ms }), true);
  return runs;
}

const CANCELLED = 'parley_limits_total{limit="timer_cancelled"}';

test('a repeating timer (every 20 ms) whose callback spins is stopped once and never runs again; the stop and the cancel are counted and logged; a bystander is served', async () => {
  const stopped = await metric('parley_lua_stopped_total');
  const cancelled = await metric(CANCELLED);
  assert.equal(await client.timeout(5000).emitWithAck('misbehave:spin-every', { ms: 20 }), true);
  // Due 300 ms from now: the spinning timer was due every 20 ms before it.
  const runs = await runsAfter(300);
  assert.equal(runs.spin_every, 1, `the spinning callback ran ${runs.spin_every} times`);
  assert.equal(await metric('parley_lua_stopped_total'), stopped + 1);
  assert.equal(await metric(CANCELLED), cancelled + 1);
  assert.match(srv.logs(), /misbehave: timer was stopped: it ran longer than the script time budget/);
  assert.match(srv.logs(), /misbehave: the guard stopped a timer callback: 1 timer\(s\) it would run again cancelled/);
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
  // And later still, it has not run again.
  assert.equal((await runsAfter(100)).spin_every, 1);
});

test('a one-shot timer that sets itself again (and another timer) and then spins is stopped once: neither timer it set runs', async () => {
  const cancelled = await metric(CANCELLED);
  assert.equal(await client.timeout(5000).emitWithAck('misbehave:spin-chain', { ms: 20 }), true);
  const runs = await runsAfter(300);
  assert.equal(runs.spin_chain, 1, `the spinning callback ran ${runs.spin_chain} times`);
  assert.equal(runs.bystander_timer, 0, 'the timer the stopped callback set ran');
  assert.equal(await metric(CANCELLED), cancelled + 1);
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
});

test('a 0 ms repeating timer runs at most every 10 ms, and a 0 ms timer that sets itself again at most once a millisecond: by the time a 50 ms timer set with them runs, at most 5 and 50 runs', async () => {
  const zero = h.once(client, 'misbehave:zero', 5000);
  assert.equal(await client.timeout(5000).emitWithAck('misbehave:zero', { ms: 50 }), true);
  const { every, chain } = await zero;
  assert.ok(every >= 1 && every <= 5, `the repeating timer ran ${every} times`);
  assert.ok(chain >= 1 && chain <= 50, `the chain ran ${chain} times`);
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
