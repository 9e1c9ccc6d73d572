// http.test.js - parley.http.request (core/lua/host_http.c on libcurl's
// multi interface, driven by parley's loop) against a real HTTP server of
// the test's own on loopback: an answer's status, headers and body; a
// timeout, a refused port, an answer over PARLEY_HTTP_MAX_RESPONSE and a bad
// URL as `nil, err`; a redirect not followed unless asked; a connection
// reused; the cap on requests in flight; the guard's budget not counting
// the wait; and other sockets served while a request waits.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const h = require('./harness');

const BUDGET_MS = 100;
let srv;
let web;          // the test's HTTP server
let base;         // its URL
let client;
let bystander;
const held = [];  // answers the test holds back: [res, ...]
let arrived;      // resolves when the next held request arrives
let arrivedResolve;
const ports = []; // the client port of each request the server saw

function expectHeld() {
  arrived = new Promise((r) => { arrivedResolve = r; });
}

test.before(async () => {
  web = http.createServer((req, res) => {
    ports.push(req.socket.remotePort);
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      if (u.pathname === '/echo') {
        res.writeHead(201, { 'X-Test': 'yes', 'Content-Type': 'application/json',
          'Set-Cookie': ['a=1', 'b=2'] });
        res.end(JSON.stringify({ method: req.method, header: req.headers['x-mine'] || null, body }));
      } else if (u.pathname === '/hold') {
        held.push(res);
        if (arrivedResolve) arrivedResolve();
      } else if (u.pathname === '/big') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('x'.repeat(10000));
      } else if (u.pathname === '/big-chunked') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        for (let i = 0; i < 10; i++) res.write('y'.repeat(1000));
        res.end();
      } else if (u.pathname === '/redirect') {
        res.writeHead(302, { Location: '/echo' });
        res.end('moved');
      } else {
        res.writeHead(404);
        res.end('no');
      }
    });
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${web.address().port}`;
  srv = await h.startParley({ env: {
    PARLEY_PLUGINS: 'testkit,httpclient',
    PARLEY_SCRIPT_TIMEOUT: String(BUDGET_MS),
    PARLEY_HTTP_MAX_RESPONSE: '2048',
    PARLEY_HTTP_MAX_INFLIGHT: '2',
  } });
  client = h.sioClient(srv, '/messages', { query: { userId: 'caller' }, transports: ['websocket'] });
  bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(client);
  await h.connected(bystander);
});

test.after(async () => {
  for (const res of held) res.destroy();
  if (client) client.close();
  if (bystander) bystander.close();
  if (srv) {
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
  }
  if (web) { web.closeAllConnections(); web.close(); }
});

function ask(req, ms = 10000) {
  return client.timeout(ms).emitWithAck('http:request', req);
}

test('a POST with headers and a body: the answer is {status, headers (lower case, repeated ones joined), body}', async () => {
  const r = await ask({ method: 'POST', url: `${base}/echo`, headers: { 'X-Mine': 'hello' }, body: 'ping' });
  assert.ok(r.answer, `no answer: ${JSON.stringify(r)}`);
  assert.equal(r.answer.status, 201);
  assert.equal(r.answer.headers['x-test'], 'yes');
  assert.equal(r.answer.headers['set-cookie'], 'a=1, b=2');
  assert.deepEqual(JSON.parse(r.answer.body), { method: 'POST', header: 'hello', body: 'ping' });
});

test('a request from a timer callback waits and gets its answer too', async () => {
  const answered = h.once(client, 'http:answered', 10000);
  assert.equal(await client.timeout(5000).emitWithAck('http:timer', { url: `${base}/echo` }), true);
  const r = await answered;
  assert.equal(r.answer.status, 201);
  assert.equal(JSON.parse(r.answer.body).method, 'GET');
});

test('a server that does not answer within timeout_ms: nil, "timeout"', async () => {
  expectHeld();
  const r = await ask({ url: `${base}/hold`, timeout_ms: 300 });
  assert.deepEqual(r, { err: 'timeout' });
  await arrived;
  held.shift().destroy();
});

test('a port nobody listens on: nil, "refused"', async () => {
  const closed = http.createServer();
  await new Promise((r) => closed.listen(0, '127.0.0.1', r));
  const port = closed.address().port;
  await new Promise((r) => closed.close(r));
  assert.deepEqual(await ask({ url: `http://127.0.0.1:${port}/` }), { err: 'refused' });
});

test('an answer over PARLEY_HTTP_MAX_RESPONSE: nil, "too large", with a Content-Length or chunked', async () => {
  assert.deepEqual(await ask({ url: `${base}/big` }), { err: 'too large' });
  assert.deepEqual(await ask({ url: `${base}/big-chunked` }), { err: 'too large' });
});

test('a URL that is not http(s) or not a URL: nil, "bad URL", nothing sent', async () => {
  const before = ports.length;
  for (const url of ['ftp://127.0.0.1/x', 'file:///etc/passwd', 'not a url', 'gopher://127.0.0.1/',
    'http://', `${base.replace('http', 'dict')}/`]) {
    assert.deepEqual(await ask({ url }), { err: 'bad URL' }, url);
  }
  assert.equal(ports.length, before);
});

test('a redirect is not followed unless asked', async () => {
  const r = await ask({ url: `${base}/redirect` });
  assert.equal(r.answer.status, 302);
  assert.equal(r.answer.headers.location, '/echo');
  const f = await ask({ url: `${base}/redirect`, follow_redirects: true });
  assert.equal(f.answer.status, 201);
});

test('requests to one server reuse its connection', async () => {
  const from = ports.length;
  for (let i = 0; i < 3; i++) assert.equal((await ask({ url: `${base}/echo` })).answer.status, 201);
  const seen = ports.slice(from);
  assert.equal(seen.length, 3);
  assert.equal(new Set(seen).size, 1, `client ports: ${seen}`);
});

test('while a request waits, the loop serves other sockets; the wait (past the guard budget) is not a stop', async () => {
  const stopped = await h.metric(srv, 'parley_lua_stopped_total');
  expectHeld();
  const pending = ask({ url: `${base}/hold` });
  await arrived;
  // parley is waiting on the held answer: others are served meanwhile.
  for (let i = 0; i < 3; i++) {
    const r = await bystander.timeout(5000).emitWithAck('conversation:join', { conversationId: `c${i}` });
    assert.equal(r.success, true, JSON.stringify(r));
  }
  await h.sleep(3 * BUDGET_MS); // longer than the guard's budget, on purpose
  held.shift().end('late but fine');
  const r = await pending;
  assert.equal(r.answer.status, 200);
  assert.equal(r.answer.body, 'late but fine');
  assert.equal(await h.metric(srv, 'parley_lua_stopped_total'), stopped);
});

test('past PARLEY_HTTP_MAX_INFLIGHT a request is refused at once and counted', async () => {
  const limit = 'parley_limits_total{limit="http_inflight"}';
  const before = (await h.metric(srv, limit)) || 0;
  expectHeld();
  const a = ask({ url: `${base}/hold` });
  await arrived;
  expectHeld();
  const b = ask({ url: `${base}/hold` });
  await arrived;
  assert.equal(await h.metric(srv, 'parley_http_inflight'), 2);
  assert.deepEqual(await ask({ url: `${base}/echo` }), { err: 'too many requests in flight' });
  assert.equal(await h.metric(srv, limit), before + 1);
  while (held.length) held.shift().end('ok');
  assert.equal((await a).answer.status, 200);
  assert.equal((await b).answer.status, 200);
  assert.equal((await ask({ url: `${base}/echo` })).answer.status, 201);
});

test('a request without a url is a usage error, raised', async () => {
  const r = await client.timeout(5000).emitWithAck('http:usage', {});
  assert.equal(r.ok, false);
  assert.match(r.err, /usage: parley.http.request/);
});
