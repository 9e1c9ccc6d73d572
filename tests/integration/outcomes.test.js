// outcomes.test.js - every way a script can answer ends in an answer: a
// handler's or a filter's refusal in any shape (`nil, err`, a status that is
// not a number, a message that is a table whose __tostring loops, text that
// is not UTF-8 or too long), an error object whose __tostring loops or throws,
// a result whose metamethods loop. Over Socket.IO with an ack and without one
// (then an `error` event), the plain WebSocket endpoint, the HTTP API and the
// connect hook (tests/plugins/misbehave). Each check waits 2 s for the answer:
// a liveness check (before this was fixed most of them never came), not a
// speed threshold.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const KEY = 'outcomes-test-key-0123456789';
const WAIT_MS = 2000;
const FAILED = 'a script failed';
const LONG = `x${'é'.repeat(511)}`; // cut to 1,023 bytes: 1,024 would split an é

// shape -> the answer: [status, message] of the error, or { ack } for a result.
const SHAPES = {
  'nil-err': [400, 'not allowed'],
  'nil-err-after-wait': [400, 'not allowed'],
  'string-status': [500, 'x'],
  'fractional-status': [500, 'x'],
  'status-out-of-range': [500, 'x'],
  'status-nan': [500, 'x'],
  'status-table': [500, 'x'],
  'throw-looping-tostring': [500, FAILED],
  'throw-throwing-tostring': [500, FAILED],
  'message-looping-tostring': [500, FAILED],
  'refuse-403-looping-message': [500, FAILED],
  'message-table-with-function': [500, FAILED],
  'message-not-utf8': [500, FAILED],
  'message-long': [400, LONG],
  'message-number': [409, '42'],
  'result-looping-metatable': { ack: { ok: true } },
};

let srv;
let bystander;
const open = [];

test.before(async () => {
  srv = await h.startParley({ env: { PARLEY_PLUGINS: 'testkit,misbehave', PARLEY_API_KEY: KEY } });
  bystander = await sio('bystander');
});
test.after(async () => {
  for (const c of open) c.close();
  const st = await srv.stop();
  assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
});

async function sio(userId) {
  const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] });
  open.push(s);
  await h.connected(s);
  return s;
}

const errorOf = ([statusCode, message]) => ({ status: 'error', statusCode, message });

async function bystanderServed() {
  assert.equal(await bystander.timeout(WAIT_MS).emitWithAck('test:echo', 'still here'), 'still here');
}

for (const [kind, prefix] of [['handler', 'misbehave:'], ['filter', 'misbehave:filter:']]) {
  for (const [shape, want] of Object.entries(SHAPES)) {
    // (A filter's result is the data the other scripts then read: their
    // reading it runs its metamethods, in their own calls.)
    if (kind === 'filter' && !Array.isArray(want)) continue;
    const expected = Array.isArray(want) ? errorOf(want) : want.ack;
    const what = Array.isArray(want) ? `${want[0]} "${want[1].slice(0, 20)}"` : 'its result';

    test(`${kind} answering ${shape}: Socket.IO with an ack gets ${what}${Array.isArray(want) ? ' (and the error event)' : ''}`, async () => {
      const s = await sio(`ack-${kind}-${shape}`);
      const error = Array.isArray(want) ? h.once(s, 'error', WAIT_MS) : null;
      const ack = await s.timeout(WAIT_MS).emitWithAck(prefix + shape, { n: 1 });
      assert.deepEqual(ack, expected);
      if (error) assert.deepEqual(await error, expected);
      await bystanderServed();
    });

    if (Array.isArray(want)) {
      test(`${kind} answering ${shape}: Socket.IO without an ack gets the error event ${what}`, async () => {
        const s = await sio(`noack-${kind}-${shape}`);
        const error = h.once(s, 'error', WAIT_MS);
        s.emit(prefix + shape, { n: 1 });
        assert.deepEqual(await error, expected);
      });
    }

    test(`${kind} answering ${shape}: the plain WebSocket gets ${what}${Array.isArray(want) ? ' (error frame and ack)' : ''}`, async () => {
      const ws = h.plainClient(srv, `userId=plain-${kind}-${shape}`);
      open.push(ws);
      await ws.opened;
      ws.sendJson({ event: prefix + shape, data: { n: 1 }, ack: 7 });
      const ack = await ws.next((f) => f.ack === 7 && f.event === undefined, WAIT_MS);
      assert.deepEqual(ack, { ack: 7, data: expected });
      if (Array.isArray(want)) {
        assert.deepEqual(await ws.next((f) => f.event === 'error', WAIT_MS), { event: 'error', data: expected });
      }
    });
  }
}

async function get(path) {
  const r = await fetch(`${srv.url}${path}`, {
    headers: { Authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

for (const [shape, want] of Object.entries({
  ...SHAPES,
  'result-looping-metatable': [200, { ok: true }],
  'status-999': [500, errorOf([500, FAILED])],
  'status-fraction': [500, errorOf([500, FAILED])],
})) {
  const [status, body] = typeof want[1] === 'string' ? [want[0], errorOf(want)] : want;
  test(`route answering ${shape}: HTTP ${status}`, async () => {
    const r = await get(`/api/misbehave/${shape}`);
    assert.deepEqual(r, { status, body });
    await bystanderServed();
  });
}

for (const [shape, [statusCode, message]] of Object.entries({
  'false-err': [401, 'not allowed'],
  'false-string-status': [500, 'x'],
  'throw-looping-tostring': [500, FAILED],
  'false-looping-message': [500, FAILED],
  'identity-looping-index': [500, FAILED],
})) {
  test(`connect hook answering ${shape}: CONNECT_ERROR ${statusCode} "${message}" (Socket.IO), close ${4000 + statusCode} (plain WebSocket)`, async () => {
    const s = h.sioClient(srv, '/messages', { query: { userId: 'x', misbehave: shape }, transports: ['websocket'] });
    open.push(s);
    const err = await h.connected(s, WAIT_MS).then(() => null, (e) => e);
    assert.ok(err, 'the connect should be refused');
    assert.deepEqual(err.data, { statusCode });
    assert.equal(err.message, message);

    const ws = h.plainClient(srv, `userId=x&misbehave=${shape}`);
    open.push(ws);
    const frame = await ws.next((f) => f.event === 'error', WAIT_MS);
    assert.deepEqual(frame.data, errorOf([statusCode, message]));
    assert.equal((await ws.closed).code, 4000 + statusCode);
    await bystanderServed();
  });
}

test('what went wrong is logged by type: no script code ran for it, and no job failed', async () => {
  const logs = srv.logs();
  assert.match(logs, /misbehave: handler for misbehave:throw-looping-tostring \(socket [\w-]+, user [^)]+\) failed: \(a table, not a string\)/);
  assert.match(logs, /misbehave: handler for misbehave:string-status refused badly: its status abc is not an integer from 400 to 599/);
  assert.match(logs, /misbehave: handler for misbehave:message-not-utf8 refused badly: its message is not UTF-8/);
  assert.doesNotMatch(logs, /a job failed|was stopped/);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
