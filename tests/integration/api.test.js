// api.test.js - the HTTP API gateway (SPEC §5): routes under /api/ declared
// by scripts and plugins, behind the PARLEY_API_KEY bearer key, JSON in and
// out, with clear 4xx errors; a route may wait for the store before it
// answers, and a route that fails harms nothing else.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

const KEY = 'api-test-key-0123456789';
let srv;

test.before(async () => { srv = await h.startParley({ env: { PARLEY_API_KEY: KEY, PARLEY_MAX_PAYLOAD: '4096' } }); });
test.after(async () => { assert.equal((await srv.stop()).code, 0); });

async function call(method, path, { body, key = KEY, type = 'application/json', raw } = {}) {
  const headers = {};
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined || raw !== undefined) headers['Content-Type'] = type;
  const r = await fetch(`${srv.url}${path}`, {
    method, headers, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, type: r.headers.get('content-type'), body: text ? JSON.parse(text) : null };
}

test('GET with a path parameter and a query string reaches the route: 200 JSON', async () => {
  const r = await call('GET', '/api/test/echo/abc?x=1&y=two');
  assert.equal(r.status, 200);
  assert.match(r.type, /^application\/json/);
  assert.deepEqual(r.body, { id: 'abc', query: { x: '1', y: 'two' }, method: 'GET' });
});

test('POST with a JSON body: the route gets it decoded and answers 201; DELETE answers 204 without a body', async () => {
  const r = await call('POST', '/api/test/things', { body: { name: 'x', tags: [] } });
  assert.deepEqual({ status: r.status, body: r.body }, { status: 201, body: { got: { name: 'x', tags: [] } } });
  const d = await call('DELETE', '/api/test/things/9');
  assert.deepEqual({ status: d.status, body: d.body }, { status: 204, body: null });
});

test('a route that waits for the store answers once it is durable', async () => {
  const r = await call('GET', '/api/test/durable');
  assert.deepEqual({ status: r.status, body: r.body }, { status: 200, body: { waited: true } });
});

test('errors: no key 401, wrong key 401, unknown route 404, wrong method 405, not JSON 415, bad JSON 400, too large 413, refusal 409, failing route 500', async () => {
  const cases = [
    [await call('GET', '/api/test/echo/1', { key: null }), 401],
    [await call('GET', '/api/test/echo/1', { key: 'wrong-key' }), 401],
    [await call('GET', '/api/nothing/here'), 404],
    [await call('PUT', '/api/test/echo/1', { body: {} }), 405],
    [await call('POST', '/api/test/things', { raw: 'name=x', type: 'application/x-www-form-urlencoded' }), 415],
    [await call('POST', '/api/test/things', { raw: '{"name": ' }), 400],
    [await call('POST', '/api/test/things', { body: { big: 'x'.repeat(5000) } }), 413],
    [await call('GET', '/api/test/refuse'), 409],
    [await call('GET', '/api/test/fail'), 500],
  ];
  for (const [r, status] of cases) {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body.status, 'error');
    assert.equal(r.body.statusCode, status);
    assert.equal(typeof r.body.message, 'string');
  }
  // And the server is fine.
  assert.equal((await call('GET', '/api/test/echo/ok')).status, 200);
});

test('without PARLEY_API_KEY the API is off: 403', async () => {
  const off = await h.startParley();
  try {
    const r = await fetch(`${off.url}/api/test/echo/1`, { headers: { Authorization: 'Bearer anything' } });
    assert.equal(r.status, 403);
    assert.match((await r.json()).message, /PARLEY_API_KEY/);
  } finally {
    await off.stop();
  }
});
