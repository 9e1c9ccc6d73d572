// api.test.js - the HTTP API gateway (SPEC §5): routes under /api/ declared
// by scripts and plugins, behind the PARLEY_API_KEY bearer key, JSON in and
// out, with clear 4xx errors; a route may wait for the store before it
// answers, and a route that fails harms nothing else.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { spawnSync } = require('node:child_process');
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

// One request written as is on a fresh connection; resolves to {status,
// headers (lower-case), body (parsed JSON or null)} once the response is in.
function rawRequest(head, body = '') {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1', () => sock.write(head + body));
    let buf = '';
    const done = () => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const lines = buf.slice(0, end).split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] || 0);
      if (buf.length < end + 4 + len) return false;
      const text = buf.slice(end + 4, end + 4 + len);
      sock.destroy();
      resolve({ status: Number(lines[0].split(' ')[1]), headers, body: text ? JSON.parse(text) : null });
      return true;
    };
    sock.on('data', (d) => { buf += d; done(); });
    sock.on('error', reject);
    sock.on('close', () => { if (!done()) reject(new Error(`connection closed before a whole response: ${JSON.stringify(buf)}`)); });
  });
}

const head = (method, path, lines) =>
  `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`;
const chunkedBody = (text) => `${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`;

test('bodies parley cannot read are refused with 411 and the connection closed (chunked, or a POST/PUT/PATCH without Content-Length), before the Content-Type is looked at; a body sent is checked to be JSON', async () => {
  const json = '{"name":"x"}';
  const cases = [
    ['chunked JSON POST (lws would drop the body)', head('POST', '/api/test/things', ['Content-Type: application/json', 'Transfer-Encoding: chunked']), chunkedBody(json), 411, /chunked bodies are not accepted: send the body with a Content-Length/],
    ['chunked PATCH', head('PATCH', '/api/test/things', ['Content-Type: application/json', 'Transfer-Encoding: gzip, chunked']), chunkedBody(json), 411, /chunked/],
    ['chunked text POST', head('POST', '/api/test/things', ['Content-Type: text/plain', 'Transfer-Encoding: chunked']), chunkedBody('hello'), 411, /chunked/],
    ['chunked POST without a Content-Type', head('POST', '/api/test/things', ['Transfer-Encoding: chunked']), chunkedBody(json), 411, /chunked/],
    ['POST without Content-Length or chunks', head('POST', '/api/test/things', ['Content-Type: application/json']), '', 411, /needs a Content-Length \(0 for no body\)/],
    ['PUT without Content-Length', head('PUT', '/api/test/echo/1', []), '', 411, /Content-Length/],
    ['a Content-Length that is not a number', head('POST', '/api/test/things', ['Content-Type: application/json', 'Content-Length: 12x']), json, 400, /Content-Length/],
    ['a text body on a DELETE', head('DELETE', '/api/test/things/1', ['Content-Type: text/plain', 'Content-Length: 5']), 'hello', 415, /application\/json/],
  ];
  for (const [what, h1, body, status, message] of cases) {
    let r;
    try {
      r = await rawRequest(h1, body);
    } catch (e) {
      // lws itself may refuse a request it cannot parse: then not with a 2xx.
      assert.fail(`${what}: ${e.message}`);
    }
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r)}`);
    assert.deepEqual({ status: r.body.status, statusCode: r.body.statusCode }, { status: 'error', statusCode: status }, what);
    assert.match(r.body.message, message, what);
    assert.equal(r.headers.connection, 'close', `${what}: what is left unread must end the connection`);
  }
  // curl's own chunked upload, as a client would send one.
  const c = spawnSync('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', '-H', `Authorization: Bearer ${KEY}`,
    '-H', 'Content-Type: application/json', '-H', 'Transfer-Encoding: chunked', '--data-binary', json,
    `${srv.url}/api/test/things`], { encoding: 'utf8' });
  assert.equal(c.stdout.trim().split('\n').pop(), '411', c.stdout + c.stderr);
  // Controls: Content-Length 0 without a type, and a JSON body, reach the route.
  assert.equal((await rawRequest(head('POST', '/api/test/things', ['Content-Length: 0']))).status, 201);
  const ok = await rawRequest(head('POST', '/api/test/things', ['Content-Type: application/json', `Content-Length: ${json.length}`]), json);
  assert.deepEqual({ status: ok.status, body: ok.body }, { status: 201, body: { got: { name: 'x' } } });
  assert.ok(await metricValue('parley_http_errors_total{code="411"}') >= 5);
});

test('a route runs once per request: a DELETE with a JSON body (and gets it), a request with Content-Length: 0', async () => {
  const body = '{"reason":"spam"}';
  const r = await rawRequest(head('DELETE', '/api/test/count/del1', ['Content-Type: application/json', `Content-Length: ${body.length}`]), body);
  assert.deepEqual({ status: r.status, body: r.body }, { status: 200, body: { n: 1, body: { reason: 'spam' } } });
  const empty = await rawRequest(head('DELETE', '/api/test/count/del2', ['Content-Length: 0']));
  assert.deepEqual({ status: empty.status, body: empty.body }, { status: 200, body: { n: 1 } });
  // A second run would come from bytes parley had read before it answered:
  // it would have counted before the next request is even sent.
  assert.deepEqual((await call('GET', '/api/test/count/del1')).body, { n: 1 }, 'the route ran twice for a body');
  assert.deepEqual((await call('GET', '/api/test/count/del2')).body, { n: 1 }, 'the route ran twice for an empty body');
});

async function metricValue(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

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

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
