// logs.test.js - logs an operator can use (issue 20, item 3):
// PARLEY_LOG_FORMAT=json writes one JSON object per line (time, level,
// module, socket, user, message), a stack trace staying inside its record;
// a socket's open and close are logged at info with its user and address;
// each HTTP API request gets an access line; a guard stop names the module,
// the event, the socket and the user.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const KEY = 'logs-test-key-0123456789';
let srv;

test.before(async () => {
  srv = await h.startParley({ env: { PARLEY_LOG_FORMAT: 'json', PARLEY_API_KEY: KEY, PARLEY_SCRIPT_TIMEOUT: '100' } });
});
test.after(async () => {
  assert.equal((await srv.stop()).code, 0);
  h.cleanup();
});

// Every line so far, parsed; a line that is not one JSON object fails.
function records() {
  return srv.logs().split('\n').filter((l) => l !== '').map((l) => {
    let r;
    try { r = JSON.parse(l); } catch (e) { assert.fail(`not a JSON line: ${l}`); }
    assert.equal(typeof r, 'object');
    assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(r.level), l);
    assert.equal(typeof r.message, 'string', l);
    return r;
  });
}

async function record(pred, what) {
  return h.waitFor(async () => records().find(pred), Boolean, what, 5000);
}

test('a socket that opens and closes: two info records with its socket id, user and address', async () => {
  const s = h.sioClient(srv, '/messages', { query: { userId: 'ann' }, transports: ['websocket'] });
  await h.connected(s);
  const id = s.id;
  const open = await record((r) => r.socket === id && /connected/.test(r.message), 'the open record');
  assert.equal(open.level, 'info');
  assert.equal(open.user, 'ann');
  assert.equal(open.module, 'runtime');
  assert.match(open.message, /^socket \S+ connected: user ann, \/messages, websocket, from (::ffff:)?127\.0\.0\.1$/);
  s.close();
  const close = await record((r) => r.socket === id && /disconnected/.test(r.message), 'the close record');
  assert.equal(close.user, 'ann');
  assert.match(close.message, /disconnected: user ann, \/messages, client namespace disconnect|disconnected: user ann/);
});

test('a handler that fails: one record, its stack trace inside the message, with module, socket and user', async () => {
  const s = h.sioClient(srv, '/messages', { query: { userId: 'bob' }, transports: ['websocket'] });
  await h.connected(s);
  await s.timeout(5000).emitWithAck('test:fail', {});
  const r = await record((x) => x.socket === s.id && /failed/.test(x.message), 'the failure record');
  assert.equal(r.level, 'error');
  assert.equal(r.module, 'testkit');
  assert.equal(r.user, 'bob');
  assert.match(r.message, /handler for test:fail \(socket \S+, user bob\) failed: .*boom/);
  assert.match(r.message, /\nstack traceback:\n/);
  s.close();
});

test('a guard stop: a record with the module, the event, the socket and the user', async () => {
  const s = h.sioClient(srv, '/messages', { query: { userId: 'carl' }, transports: ['websocket'] });
  await h.connected(s);
  await s.timeout(10000).emitWithAck('test:spin', {});
  const r = await record((x) => x.socket === s.id && /was stopped/.test(x.message), 'the stop record');
  assert.equal(r.module, 'testkit');
  assert.equal(r.user, 'carl');
  assert.match(r.message, /^handler for test:spin \(socket \S+, user carl\) was stopped/);
  s.close();
});

test('the HTTP API: an access record per request, with method, path, status, size, time and address', async () => {
  const res = await fetch(`${srv.url}/api/users/online?secret=x`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(res.status, 200);
  const r = await record((x) => x.module === 'api' && /GET \/api\/users\/online /.test(x.message), 'the access record');
  assert.equal(r.level, 'info');
  assert.match(r.message, /^GET \/api\/users\/online 200 \d+ bytes \d+ ms from (::ffff:)?127\.0\.0\.1$/);
  assert.doesNotMatch(r.message, /secret/);
  const bad = await fetch(`${srv.url}/api/users/x/sockets`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: '{}' });
  assert.equal(bad.status, 405);
  await record((x) => x.module === 'api' && /^POST \/api\/users\/x\/sockets 405 /.test(x.message), 'the 405 access record');
});

test('every line so far is one JSON object', () => {
  assert.ok(records().length >= 8);
});

test('in the text format a stack trace stays in its record: every further line is indented, each record starts with its time', async () => {
  const t = await h.startParley({});
  try {
    const s = h.sioClient(t, '/messages', { query: { userId: 'dora' }, transports: ['websocket'] });
    await h.connected(s);
    await s.timeout(5000).emitWithAck('test:fail', {});
    await h.waitFor(async () => t.logs(), (l) => /handler for test:fail/.test(l), 'the failure line');
    s.close();
    const lines = t.logs().split('\n').filter((l) => l !== '');
    const i = lines.findIndex((l) => /handler for test:fail/.test(l));
    assert.match(lines[i], /^\d{4}-\d\d-\d\dT\S+Z error testkit: handler for test:fail/);
    assert.match(lines[i + 1], /^ {2}stack traceback:$/);
    for (const l of lines) assert.match(l, /^(\d{4}-\d\d-\d\dT\S+Z (error|warn |info |debug) | {2})/, l);
  } finally {
    assert.equal((await t.stop()).code, 0);
  }
});

test('PARLEY_LOG_FORMAT=xml stops parley at start, saying why', async () => {
  const p = await h.spawnParley({ env: { PARLEY_LOG_FORMAT: 'xml' } });
  const st = await p.exited;
  assert.notEqual(st.code, 0);
  assert.match(p.logs(), /PARLEY_LOG_FORMAT \(file key log_format\): "xml" is neither text nor json/);
});
