// ordering.test.js - connected hooks run as jobs that may wait, and a
// socket's events queue behind them in order (core/lua/runtime/jobs.lua,
// docs/lua.md "Jobs and waiting"). The waiting call is real: the waiter
// plugin's connected hook asks the test's own HTTP server, which answers
// when the test says. Shown: the socket's events wait and then run in the
// order sent; other sockets are not held up; a disconnect during the wait
// runs the disconnect hooks at once and nothing breaks when the connected
// hook resumes; past PARLEY_MAX_QUEUED_EVENTS an event gets an error 429
// (and its ack), counted and logged, and the socket carries on.
// The read-ordering rule (events behind a job waiting on a store READ)
// needs a store whose reads wait: it is exercised by the PostgreSQL pass.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const h = require('./harness');

const MAX_QUEUED = 3;
let srv;
let web;
let base;
const held = new Map(); // tag -> the held answer
const arrivals = new Map(); // tag -> resolve, for the test to wait for a request to arrive
const arrived = new Map(); // tag -> promise

function expect(tag) {
  arrived.set(tag, new Promise((r) => arrivals.set(tag, r)));
}
function release(tag) {
  const res = held.get(tag);
  held.delete(tag);
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('ok');
}

function client(user, tag) {
  const query = { userId: user };
  if (tag) {
    expect(tag);
    query.hold = `${base}/hold?tag=${tag}`;
  }
  return h.sioClient(srv, '/messages', { query, transports: ['websocket'] });
}

function note(s, n) {
  return s.timeout(10000).emitWithAck('order:note', n);
}

test.before(async () => {
  web = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const tag = u.searchParams.get('tag');
    held.set(tag, res);
    const r = arrivals.get(tag);
    if (r) r();
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${web.address().port}`;
  srv = await h.startParley({ env: {
    PARLEY_PLUGINS: 'testkit,waiter',
    PARLEY_MAX_QUEUED_EVENTS: String(MAX_QUEUED),
  } });
});

test.after(async () => {
  for (const res of held.values()) res.destroy();
  if (web) web.close();
  if (srv) {
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
  }
});

test('a socket\'s events wait for its connected hooks, then run in the order sent; others go on', async () => {
  const s = client('orderly', 'a');
  const other = client('other');
  try {
    await h.connected(s);
    await h.connected(other);
    await arrived.get('a');
    // The connected hook is waiting: these queue behind it.
    const acks = [note(s, 1), note(s, 2), note(s, 3)];
    // Another socket is served meanwhile.
    const mine = await note(other, 'x');
    assert.deepEqual(mine, { notes: ['x'], ready: true });
    const readyEv = h.once(s, 'waiter:ready', 10000);
    release('a');
    assert.equal((await readyEv).status, 200);
    const answers = await Promise.all(acks);
    // Each ran after the connected hook ended, in order.
    assert.deepEqual(answers.map((a) => a.ready), [true, true, true]);
    assert.deepEqual(answers[2].notes, [1, 2, 3]);
    assert.deepEqual(answers[0].notes.slice(0, 1), [1]);
    // And the socket goes on as any other.
    assert.deepEqual((await note(s, 4)).notes, [1, 2, 3, 4]);
  } finally {
    s.close();
    other.close();
  }
});

test('past PARLEY_MAX_QUEUED_EVENTS an event gets an error 429 and its ack, counted; the socket carries on', async () => {
  const s = client('flooder', 'b');
  const bystander = client('bystander-b');
  try {
    await h.connected(s);
    await h.connected(bystander);
    await arrived.get('b');
    const before = (await h.metric(srv, 'parley_limits_total{limit="max_queued_events"}')) || 0;
    const errors = [];
    s.on('error', (e) => errors.push(e));
    const queued = [];
    for (let i = 1; i <= MAX_QUEUED; i++) queued.push(note(s, i));
    const refused = await note(s, 'over');
    assert.equal(refused.statusCode, 429, JSON.stringify(refused));
    assert.match(refused.message, /too many events waiting: at most 3/);
    await h.waitFor(async () => errors.length, (n) => n >= 1, 'the error event');
    assert.equal(errors[0].statusCode, 429);
    assert.equal(await h.metric(srv, 'parley_limits_total{limit="max_queued_events"}'), before + 1);
    assert.match(srv.logs(), /the event order:note came with 3 events already waiting .*PARLEY_MAX_QUEUED_EVENTS\): refused/);
    assert.deepEqual((await note(bystander, 'y')).notes, ['y']);
    release('b');
    const answers = await Promise.all(queued);
    assert.deepEqual(answers[MAX_QUEUED - 1].notes, [1, 2, 3]);
    assert.deepEqual((await note(s, 'after')).notes, [1, 2, 3, 'after']);
  } finally {
    s.close();
    bystander.close();
  }
});

test('a socket that goes while its connected hook waits: the disconnect hooks run at once, queued events are dropped, nothing breaks', async () => {
  const s = client('leaver', 'c');
  const watcher = client('watcher-c');
  try {
    await h.connected(s);
    await h.connected(watcher);
    await arrived.get('c');
    const id = s.id;
    // Sent before the disconnect on the same connection: it reaches the
    // server first, and queues behind the waiting hook.
    s.emit('order:note', 'never');
    s.disconnect();
    const gone = await h.waitFor(() => watcher.timeout(5000).emitWithAck('order:gone'),
      (list) => list.some((g) => g.id === id), 'the disconnect hook');
    const g = gone.find((x) => x.id === id);
    assert.equal(g.ready, false, 'the disconnect hooks ran while the connected hook waited');
    assert.equal(g.notes, 0, 'the queued event did not run');
    assert.equal(g.reason, 'client namespace disconnect');
    assert.match(srv.logs(), new RegExp(`socket ${id} went with 1 event\\(s\\) queued: not run`));
    // The connected hook resumes for a socket that is gone, and ends.
    release('c');
    await h.waitFor(() => watcher.timeout(5000).emitWithAck('order:ready', id), (r) => r === true,
      'the connected hook to end');
    assert.deepEqual((await note(watcher, 'z')).notes, ['z']);
    assert.equal(srv.proc.exitCode, null);
  } finally {
    s.close();
    watcher.close();
  }
});
