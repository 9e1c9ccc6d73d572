// guard-offender.test.js - one script cannot stall everyone (issue 20, item
// 4): a handler that loops, triggered every 300 ms by one client, is stopped
// by the guard each time, and each stop held the loop for the whole budget.
// The socket whose calls are stopped again and again is paused, then told
// why and disconnected; the handler stopped again and again (whoever sent
// the events) is disabled until the next reload, and events to it get a
// 503 at once. Meanwhile a bystander's acks keep coming. Asserted on what
// happens (how many stops, which events, which answers), never on timing;
// tests/bench/offender.js measures the bystander's p99.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const SOCKET_STOPS = 3;
const HANDLER_STOPS = 5;
let srv;
let bystander;
let acks = 0;
let bystanderOn = true;

// The bystander talks all along: one ack after another, each checked.
async function talk() {
  while (bystanderOn) {
    const n = acks;
    assert.equal(await bystander.timeout(10000).emitWithAck('test:echo', n), n);
    acks++;
  }
}
let talking;

test.before(async () => {
  srv = await h.startParley({ env: { PARLEY_GUARD_SOCKET_STOPS: String(SOCKET_STOPS),
    PARLEY_GUARD_HANDLER_STOPS: String(HANDLER_STOPS), PARLEY_GUARD_THROTTLE: '200' } });
  bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(bystander);
  talking = talk();
});
test.after(async () => {
  bystanderOn = false;
  await talking.catch(() => {});
  assert.equal((await srv.stop()).code, 0);
  h.cleanup();
});

// Log lines of guard stops of test:spin for the socket id given.
function stopsOf(id) {
  return srv.logs().split('\n').filter((l) => l.includes('handler for test:spin (socket ' + id + ',')
    && l.includes('was stopped')).length;
}

// Connects `user` and emits test:spin every 300 ms (not waiting for
// answers, as a misbehaving client would) until it is disconnected or
// `until` resolves. Returns the socket, its acks and its error events.
async function offender(user) {
  const s = h.sioClient(srv, '/messages', { query: { userId: user }, transports: ['websocket'] });
  await h.connected(s);
  const out = { s, id: s.id, acks: [], errors: [], reason: null };
  s.on('error', (e) => out.errors.push(e));
  out.gone = new Promise((resolve) => s.on('disconnect', (reason) => { out.reason = reason; resolve(); }));
  out.timer = setInterval(() => {
    if (s.connected) s.emit('test:spin', {}, (a) => out.acks.push(a));
  }, 300);
  return out;
}

test(`a socket whose test:spin calls the guard stopped ${SOCKET_STOPS} times is told why and disconnected; the bystander is answered all along`, async () => {
  const before = acks;
  const o = await offender('offender-1');
  // A bound, not a measure: without the cut-off it never comes.
  await h.waitFor(async () => o.reason, Boolean, `the offender disconnected (stops so far: ${stopsOf(o.id)})`, 30000);
  clearInterval(o.timer);
  assert.equal(o.reason, 'io server disconnect');
  assert.equal(stopsOf(o.id), SOCKET_STOPS, `stops logged for ${o.id}:\n${srv.logs()}`);
  const last = o.errors[o.errors.length - 1];
  assert.equal(last.statusCode, 429, JSON.stringify(o.errors));
  assert.match(last.message, /disconnected: your events ran past the script time budget 3 times/);
  assert.match(srv.logs(), new RegExp(`warn  socket ${o.id} \\(user offender-1\\): the guard stopped its calls 3 times`));
  assert.equal(await h.metric(srv, 'parley_limits_total{limit="guard_socket_disconnected"}'), 1);
  assert.ok(await h.metric(srv, 'parley_limits_total{limit="guard_socket_throttled"}') >= 1);
  // The guard's log line names the module, the event, the socket and the user.
  assert.match(srv.logs(), new RegExp(`testkit: handler for test:spin \\(socket ${o.id}, user offender-1\\) was stopped`));
  // The bystander kept talking, and still does.
  const after = acks;
  assert.ok(after > before, `bystander acks: ${before} then ${after}`);
  await h.waitFor(() => acks, (n) => n >= after + 20, 'bystander acks after the disconnect');
});

test(`the handler stopped ${HANDLER_STOPS} times in a minute is disabled until the next reload: events to it get a 503 at once, the rest goes on`, async () => {
  // Two more stops from another socket (the first socket's 3 count too).
  const o = await offender('offender-2');
  await h.waitFor(async () => srv.logs(), (l) => /disabled until the next reload/.test(l),
    'the handler disabled');
  await h.waitFor(async () => o.acks.some((a) => a && a.statusCode === 503), Boolean,
    'a 503 for the offender');
  clearInterval(o.timer);
  assert.equal(stopsOf(o.id), HANDLER_STOPS - SOCKET_STOPS);
  assert.match(srv.logs(), /warn  testkit: the handler for test:spin was stopped by the guard 5 times in a minute \(PARLEY_GUARD_HANDLER_STOPS 5\): disabled until the next reload/);
  assert.equal(await h.metric(srv, 'parley_limits_total{limit="guard_handler_disabled"}'), 1);
  // Any socket's test:spin is now refused without running.
  const fresh = h.sioClient(srv, '/messages', { query: { userId: 'fresh' }, transports: ['websocket'] });
  await h.connected(fresh);
  const stopped = await h.metric(srv, 'parley_lua_stopped_total');
  const ack = await fresh.timeout(5000).emitWithAck('test:spin', {});
  assert.equal(ack.statusCode, 503);
  assert.match(ack.message, /testkit: the handler for test:spin is disabled: the guard stopped it again and again; it runs again after the next reload/);
  assert.equal(await h.metric(srv, 'parley_lua_stopped_total'), stopped);
  // The module's other handlers answer.
  assert.equal(await fresh.timeout(5000).emitWithAck('test:echo', 'still'), 'still');
  // A reload builds a new registry: the handler runs (and is stopped) again.
  assert.equal(await h.reload(srv), 'ok');
  const again = await fresh.timeout(10000).emitWithAck('test:spin', {});
  assert.equal(again.statusCode, 500);
  assert.equal(again.message, 'a script took too long');
  fresh.close();
  o.s.close();
  const n = acks;
  await h.waitFor(() => acks, (m) => m >= n + 20, 'bystander acks at the end');
});
