// push.test.js - plugins/push against a real webhook of the test's own on
// loopback: one signed POST per registered member with no socket (the
// signature checked with the secret, the delivery id in its header), none
// to members online; a 500, a timeout and a refused port retried under the
// same delivery id; a kill -9 while a push waits for its retry, and it goes
// out after the restart; several messages collapsed into one push; a push
// cancelled by its user connecting; an incoming call pushed as kind
// "call"; a missing or non-http URL refused at start, naming the setting.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const h = require('./harness');

const KEY = 'push-test-key';
const SECRET = 'push-test-secret';

// A webhook: records each POST ({headers, raw, body}) and answers what
// `answer(n)` says for the n-th (a status, or 'hold': no answer at all).
async function webhook(port = 0) {
  const hook = { posts: [], answer: () => 200, waiters: [], held: [] };
  hook.server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      const post = { headers: req.headers, raw, body: JSON.parse(raw) };
      hook.posts.push(post);
      const a = hook.answer(hook.posts.length);
      if (a === 'hold') hook.held.push(res);
      else { res.writeHead(a); res.end(); }
      hook.waiters = hook.waiters.filter((w) => !w());
    });
  });
  await new Promise((r) => hook.server.listen(port, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${hook.server.address().port}/hook`;
  // Resolves once `n` POSTs came.
  hook.count = (n, ms = 15000) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${hook.posts.length} POSTs, not ${n}, within ${ms} ms`)), ms);
    const check = () => { if (hook.posts.length >= n) { clearTimeout(t); resolve(hook.posts); return true; } return false; };
    if (!check()) hook.waiters.push(check);
  });
  hook.close = () => { for (const r of hook.held) r.destroy(); hook.server.closeAllConnections(); hook.server.close(); };
  return hook;
}

const started = [];
const hooks = [];

// parley with the push plugin (and calls), its plugin_config from `push`.
async function startPush(hookUrl, push = {}, opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-push-conf-'));
  const conf = path.join(dir, 'parley.conf.lua');
  const fields = Object.entries(push).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');
  fs.writeFileSync(conf, `return { plugin_config = { push = { ${fields} } } }\n`);
  const srv = await h.startParley({ dataDir: opts.dataDir, env: {
    PARLEY_PLUGINS: 'calls,push', PARLEY_API_KEY: KEY, PARLEY_CONFIG: conf,
    ...(hookUrl !== null ? { PARLEY_PUSH_URL: hookUrl } : {}), PARLEY_PUSH_SECRET: SECRET,
    ...(opts.env || {}) } });
  started.push(srv);
  return srv;
}

test.after(async () => {
  for (const srv of started) if (srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
  for (const hook of hooks) hook.close();
});

async function api(srv, method, p, body) {
  const r = await fetch(`${srv.url}${p}`, { method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function user(srv, userId) {
  const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] });
  await h.connected(s);
  return s;
}

async function send(sock, conversationId, content, type = 'text') {
  const ack = await sock.timeout(5000).emitWithAck('message:send',
    { conversationId, clientMessageId: crypto.randomUUID(), type, content });
  assert.equal(ack.status, 'sent', JSON.stringify(ack));
  return ack;
}

function signed(post) {
  const want = 'sha256=' + crypto.createHmac('sha256', SECRET).update(post.raw).digest('hex');
  return post.headers['x-parley-signature'] === want;
}

const gauge = (srv) => h.metric(srv, 'parley_push_outbox');

test('a message: one signed POST for each registered member with no socket; the sender and members online get none', async () => {
  const hook = await webhook();
  hooks.push(hook);
  const srv = await startPush(hook.url, { collapse_ms: 0, preview_chars: 5 });
  assert.equal((await api(srv, 'PUT', '/api/conversations/team/members', { members: ['ann', 'bob', 'cid', 'dee'] })).status, 200);
  const ann = await user(srv, 'ann');
  const bob = await user(srv, 'bob');
  const ack = await send(ann, 'team', 'héllo wörld');
  await hook.count(2);
  await h.waitFor(() => gauge(srv), (n) => n === 0, 'the outbox empties');
  assert.equal(hook.posts.length, 2);
  const to = hook.posts.map((p) => p.body.userId).sort();
  assert.deepEqual(to, ['cid', 'dee']);
  for (const post of hook.posts) {
    assert.ok(signed(post), `bad signature ${post.headers['x-parley-signature']}`);
    assert.match(post.headers['x-parley-delivery'], /^[0-9a-f]{13,}/);
    assert.equal(post.headers['content-type'], 'application/json');
    const b = post.body;
    assert.equal(b.kind, 'message');
    assert.equal(b.conversationId, 'team');
    assert.equal(b.messageId, ack.messageId);
    assert.equal(b.senderId, 'ann');
    assert.equal(b.sender, 'ann');
    assert.equal(b.type, 'text');
    assert.equal(b.preview, 'héllo…');
    assert.equal(b.timestamp, ack.timestamp);
    assert.equal(b.count, 1);
  }
  assert.notEqual(hook.posts[0].headers['x-parley-delivery'], hook.posts[1].headers['x-parley-delivery']);
  // A message that is not text: its type's name.
  await send(bob, 'team', { url: 'https://x/y.png' }, 'image');
  await hook.count(4);
  assert.deepEqual(hook.posts.slice(2).map((p) => p.body.preview), ['image', 'image']);
  // The webhook answered; parley counts once it read the answer.
  await h.waitFor(() => h.metric(srv, 'parley_push_sent_total'), (n) => n === 4, 'four sent');
  assert.equal(await h.metric(srv, 'parley_push_webhook_requests_total'), 4);
  assert.ok(await h.metric(srv, 'parley_push_webhook_seconds_total') > 0);
  ann.close();
  bob.close();
});

test('a 500, then a timeout: tried again with the same delivery id and signature, until a 2xx', async () => {
  const hook = await webhook();
  hooks.push(hook);
  hook.answer = (n) => (n === 1 ? 500 : n === 2 ? 'hold' : 204);
  const srv = await startPush(hook.url, { collapse_ms: 0, backoff_ms: 50, timeout_ms: 300 });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'are you there');
  await hook.count(3);
  await h.waitFor(() => gauge(srv), (n) => n === 0, 'the outbox empties');
  const ids = hook.posts.map((p) => p.headers['x-parley-delivery']);
  assert.equal(new Set(ids).size, 1, `ids: ${ids}`);
  assert.ok(hook.posts.every(signed));
  assert.equal(await h.metric(srv, 'parley_push_retried_total'), 2);
  assert.equal(await h.metric(srv, 'parley_push_sent_total'), 1);
  assert.match(srv.logs(), new RegExp(`delivery ${ids[0]} to eve: status 500`));
  assert.match(srv.logs(), new RegExp(`delivery ${ids[0]} to eve: timeout`));
  ann.close();
});

test('a refused port: tried again, and delivered under the same id once the webhook listens', async () => {
  const port = await h.freePort();
  const srv = await startPush(`http://127.0.0.1:${port}/hook`, { collapse_ms: 0, backoff_ms: 100, max_backoff_ms: 200 });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'knock knock');
  await h.waitFor(() => h.metric(srv, 'parley_push_retried_total'), (n) => n >= 1, 'a retry');
  const m = /delivery (\S+) to eve: refused/.exec(srv.logs());
  assert.ok(m, srv.logs());
  const hook = await webhook(port);
  hooks.push(hook);
  await hook.count(1);
  assert.equal(hook.posts[0].headers['x-parley-delivery'], m[1]);
  assert.ok(signed(hook.posts[0]));
  ann.close();
});

test('kill -9 while a push waits for its retry: it goes out after the restart, same id', async () => {
  const hook = await webhook();
  hooks.push(hook);
  hook.answer = (n) => (n === 1 ? 503 : 200);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-push-data-'));
  const conf = { collapse_ms: 0, backoff_ms: 3000, max_backoff_ms: 3000 };
  const srv = await startPush(hook.url, conf, { dataDir });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'before the crash');
  await hook.count(1);
  await h.waitFor(() => h.metric(srv, 'parley_push_retried_total'), (n) => n === 1, 'the retry planned');
  ann.close();
  await srv.kill('SIGKILL');
  const again = await startPush(hook.url, conf, { dataDir });
  // Read back by the first tick (the load hook cannot wait for the store).
  await h.waitFor(() => gauge(again), (n) => n === 1, 'the outbox read back');
  await hook.count(2);
  assert.equal(hook.posts[1].headers['x-parley-delivery'], hook.posts[0].headers['x-parley-delivery']);
  assert.equal(hook.posts[1].body.preview, 'before the crash');
  await h.waitFor(() => gauge(again), (n) => n === 0, 'the outbox empties');
});

test('kill -9 right after the ack: the push was already in the store, and is there after the restart', async () => {
  const hook = await webhook();
  hooks.push(hook);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-push-data-'));
  // A long collapse window: nothing goes out before the kill.
  const srv = await startPush(hook.url, { collapse_ms: 600000 }, { dataDir });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'acked then killed');
  ann.close();
  await srv.kill('SIGKILL');
  assert.equal(hook.posts.length, 0);
  const again = await startPush(hook.url, { collapse_ms: 0 }, { dataDir });
  // Read back by the first tick (the load hook cannot wait for the store).
  await h.waitFor(() => gauge(again), (n) => n === 1, 'the outbox read back');
  // The new collapse window does not move a delivery already due later: it
  // waits; what matters here is that it survived.
});

test('a webhook that keeps failing: given up after max_attempts, dropped and counted', async () => {
  const hook = await webhook();
  hooks.push(hook);
  hook.answer = () => 500;
  const srv = await startPush(hook.url, { collapse_ms: 0, backoff_ms: 20, max_attempts: 3 });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'anyone?');
  await h.waitFor(() => h.metric(srv, 'parley_push_dropped_total{reason="attempts"}'), (n) => n === 1, 'dropped');
  assert.equal(hook.posts.length, 3);
  assert.equal(new Set(hook.posts.map((p) => p.headers['x-parley-delivery'])).size, 1);
  assert.equal(await h.metric(srv, 'parley_push_retried_total'), 2);
  assert.equal(await gauge(srv), 0);
  assert.match(srv.logs(), /dropped: attempts/);
  ann.close();
});

test('a delivery older than max_age_ms is not tried again: dropped and counted by age', async () => {
  const hook = await webhook();
  hooks.push(hook);
  hook.answer = () => 500;
  const srv = await startPush(hook.url, { collapse_ms: 0, backoff_ms: 600, max_backoff_ms: 600,
    max_attempts: 100, max_age_ms: 1000 });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'too late');
  await h.waitFor(() => h.metric(srv, 'parley_push_dropped_total{reason="age"}'), (n) => n === 1, 'dropped by age');
  assert.ok(hook.posts.length >= 2 && hook.posts.length < 100, `${hook.posts.length} tries`);
  assert.equal(await h.metric(srv, 'parley_push_dropped_total{reason="attempts"}'), 0);
  assert.equal(await gauge(srv), 0);
  ann.close();
});

test('messages to one user within the window collapse into one push that says how many', async () => {
  const hook = await webhook();
  hooks.push(hook);
  const srv = await startPush(hook.url, { collapse_ms: 1500 });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'one');
  await send(ann, 'pair', 'two');
  await send(ann, 'pair', 'three');
  await hook.count(1);
  await h.waitFor(() => gauge(srv), (n) => n === 0, 'the outbox empties');
  assert.equal(hook.posts.length, 1);
  assert.equal(hook.posts[0].body.count, 3);
  assert.equal(hook.posts[0].body.preview, 'three');
  assert.equal(await h.metric(srv, 'parley_push_collapsed_total'), 2);
  ann.close();
});

test('a user who connects before the push went out cancels it', async () => {
  const hook = await webhook();
  hooks.push(hook);
  const srv = await startPush(hook.url, { collapse_ms: 600000 });
  await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'pair', 'see you soon');
  assert.equal(await gauge(srv), 1);
  const eve = await user(srv, 'eve');
  await h.waitFor(() => h.metric(srv, 'parley_push_cancelled_total'), (n) => n === 1, 'cancelled');
  assert.equal(await gauge(srv), 0);
  assert.equal(hook.posts.length, 0);
  ann.close();
  eve.close();
});

test('past max_outbox the oldest delivery is dropped and counted', async () => {
  const hook = await webhook();
  hooks.push(hook);
  const srv = await startPush(hook.url, { collapse_ms: 600000, max_outbox: 2 });
  await api(srv, 'PUT', '/api/conversations/g/members', { members: ['ann', 'u1', 'u2', 'u3'] });
  const ann = await user(srv, 'ann');
  await send(ann, 'g', 'hi all');
  assert.equal(await gauge(srv), 2);
  assert.equal(await h.metric(srv, 'parley_push_dropped_total{reason="overflow"}'), 1);
  ann.close();
});

test('call:invite to a callee with no socket is pushed as kind "call"', async () => {
  const hook = await webhook();
  hooks.push(hook);
  const srv = await startPush(hook.url, { collapse_ms: 0 });
  const ann = await user(srv, 'ann');
  const ack = await ann.timeout(5000).emitWithAck('call:invite', { toUserId: 'zed', kind: 'video' });
  assert.ok(ack.callId, JSON.stringify(ack));
  await hook.count(1);
  const b = hook.posts[0].body;
  assert.equal(b.kind, 'call');
  assert.equal(b.userId, 'zed');
  assert.equal(b.senderId, 'ann');
  assert.equal(b.type, 'video');
  assert.ok(signed(hook.posts[0]));
  ann.close();
});

test('no URL, or a URL that is not http(s): parley refuses to start and says which setting', async () => {
  for (const [url, want] of [[null, /PARLEY_PUSH_URL/], ['ftp://127.0.0.1/x', /PARLEY_PUSH_URL.*http/]]) {
    const p = await h.spawnParley({ env: { PARLEY_PLUGINS: 'push', PARLEY_PUSH_SECRET: SECRET,
      ...(url ? { PARLEY_PUSH_URL: url } : {}) } });
    const st = await p.exited;
    assert.notEqual(st.code, 0, p.logs());
    assert.match(p.logs(), want);
  }
  const p = await h.spawnParley({ env: { PARLEY_PLUGINS: 'push', PARLEY_PUSH_URL: 'http://127.0.0.1:9/' } });
  assert.notEqual((await p.exited).code, 0);
  assert.match(p.logs(), /PARLEY_PUSH_SECRET/);
});

test('examples/push-receiver: takes a signed push, refuses a forged one', async () => {
  const { spawn } = require('node:child_process');
  const port = await h.freePort();
  const recv = spawn(process.execPath, [path.join(h.ROOT, 'examples', 'push-receiver', 'receiver.js')],
    { env: { PATH: process.env.PATH, PUSH_SECRET: SECRET, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  recv.stdout.on('data', (d) => { out += d; });
  recv.stderr.on('data', (d) => { out += d; });
  try {
    await h.waitFor(() => out, (o) => o.includes('listening'), 'the receiver listens');
    const url = `http://127.0.0.1:${port}/push`;
    const forged = await fetch(url, { method: 'POST', body: '{"userId":"eve"}',
      headers: { 'X-Parley-Signature': 'sha256=' + '0'.repeat(64), 'X-Parley-Delivery': 'x' } });
    assert.equal(forged.status, 401);
    const srv = await startPush(url, { collapse_ms: 0 });
    await api(srv, 'PUT', '/api/conversations/pair/members', { members: ['ann', 'eve'] });
    const ann = await user(srv, 'ann');
    await send(ann, 'pair', 'through the example');
    await h.waitFor(() => out, (o) => o.includes('notify eve: ann: through the example'), 'the receiver notified');
    await h.waitFor(() => h.metric(srv, 'parley_push_sent_total'), (n) => n === 1, 'sent');
    ann.close();
  } finally {
    recv.kill();
  }
});
