// cluster-lb.test.js - cluster mode behind a real load balancer, and its
// faults (issue 19 items 5 and 6). Three parley nodes on one PostgreSQL
// database and one private Redis, with the HAProxy and nginx blocks of
// docs/cluster.md run as written in front (only the certificate, the
// addresses, the ports and the stats socket's path swapped for the
// test's): socket.io-client with its default transports (polling, then the
// upgrade) and on polling only, the plain WebSocket and the HTTP API,
// sender and receiver on different nodes; the cookie is what keeps a
// polling session on its node (without it: "Session ID unknown"). Faults:
// Redis stopped and back (the nodes tell their sockets cluster:resync, and
// messages:sync returns what was sent meanwhile); Redis frozen (SIGSTOP)
// while a node publishes 64 MiB (PARLEY_REDIS_MAX_BACKLOG holds, counted,
// the node's memory stays bounded, the other nodes are told to catch up);
// a node too slow for Redis's pubsub output limit (Redis closes it; it
// reconnects, subscribes again and tells its sockets); a node killed with
// -9 behind HAProxy (its clients reconnect to the others, no acked message
// lost, the health check takes it out). Runs with PARLEY_TEST_PG (the
// PostgreSQL pass of tests/run.sh), Debian's redis-server and haproxy;
// the nginx test needs nginx too.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');
const WebSocket = require('ws');
const h = require('./harness');
const { Client } = require('../harness/parley-testing');

const { redisSkip, privateRedis } = require('./redis-kit');
const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => fs.existsSync(p));
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
const skip = redisSkip || (!HAPROXY ? 'needs HAProxy (haproxy; tests/deps.sh --test installs it)' : false);
const skipNginx = skip || (!NGINX && 'needs nginx (tests/deps.sh --test installs it)');

// The balancers' certificate is the test's own.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const KEY = 'lb-test-key';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-cluster-lb-'));
const redis = privateRedis(dir);
const { sock, cli, shardSubscribers } = redis;
const redisStart = () => redis.start();
const redisKill = () => redis.stop();
const shared = path.join(dir, 'store');
const nodes = {};      // node1..node3 (the names HAProxy's cookie carries)
const killed = new Set();
const procs = [];      // haproxy, nginx
const sockets = [];
let lb = null;         // { port, url, stats(), proc }

// ---- Redis ----


// ---- nodes and clients ----

async function node(name) {
  nodes[name] = await h.startParley({
    env: {
      PARLEY_DATA_DIR: shared, PARLEY_REDIS: `unix://${sock}`, PARLEY_NODE_ID: name,
      PARLEY_API_KEY: KEY, PARLEY_REDIS_MAX_BACKLOG: String(1 << 20),
      // Under AddressSanitizer freed memory waits in its quarantine (256 MiB
      // by default): the RSS test would measure that, not the backlog.
      ...(process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=4` } : {}),
    },
  });
  return nodes[name];
}

// A scripted client straight to a node, on WebSocket.
async function direct(srv, userId) {
  const c = new Client(h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] }));
  await h.connected(c.socket);
  return c;
}

// A scripted client through the balancer on `port`: socket.io-client's
// default transports unless opts say otherwise, with a cookie jar
// (withCredentials: what a browser does with the balancer's cookie).
async function through(port, userId, opts = {}) {
  const s = io(`https://127.0.0.1:${port}/messages`, {
    query: { userId }, withCredentials: true, forceNew: true, reconnection: false,
    rejectUnauthorized: false, ...opts,
  });
  sockets.push(s);
  const c = new Client(s);
  await h.connected(s, 10000);
  return c;
}

// The node HAProxy's cookie sends a client's requests to.
function cookieNode(c) {
  const jar = c.socket.io.engine._cookieJar;
  for (const [name, cookie] of jar ? jar.cookies : []) if (name === 'PARLEY_NODE') return cookie.value;
  return null;
}

// The next cluster:resync `c` gets for `reason`: a socket may be told twice
// (its own node subscribed again, and another node's broadcasts that
// stayed behind), in either order.
async function resync(c, reason) {
  for (;;) {
    const got = await c.next('cluster:resync', 15000);
    if (got.reason === reason) return got;
    assert.ok(['subscription', 'unsent'].includes(got.reason), JSON.stringify(got));
  }
}

const rss = (srv) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]) * 1024;
const healthz = async (srv) => (await fetch(`${srv.url}/healthz`)).json();
const text = (conversationId, content, clientMessageId) =>
  ({ conversationId, clientMessageId, type: 'text', content });

// ---- balancers ----

// The ```kind block of docs/cluster.md.
function documented(kind) {
  const doc = fs.readFileSync(path.join(h.ROOT, 'docs', 'cluster.md'), 'utf8');
  const m = new RegExp('```' + kind + '\\n([\\s\\S]*?)```').exec(doc);
  assert.ok(m, `docs/cluster.md has no ${kind} block`);
  return m[1];
}

// A self-signed certificate: { pem (certificate and key, HAProxy's), crt, key }.
function certificate() {
  const key = path.join(dir, 'key.pem');
  const crt = path.join(dir, 'crt.pem');
  const pem = path.join(dir, 'chat.pem');
  if (!fs.existsSync(pem)) {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
      '-out', crt, '-subj', '/CN=localhost', '-days', '1'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    fs.writeFileSync(pem, fs.readFileSync(crt, 'utf8') + fs.readFileSync(key, 'utf8'));
  }
  return { pem, crt, key };
}

// Starts a balancer (`argv`); resolves once it answers /healthz over TLS.
async function startProxy(argv, port) {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  await h.waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`${argv[0]} exited ${proc.exitCode}:\n${out}`);
    try { return (await fetch(`https://127.0.0.1:${port}/healthz`)).status; } catch (_) { return 0; }
  }, (s) => s === 200, `${argv[0]} serving /healthz on ${port}`, 15000)
    .catch((e) => { throw new Error(`${e.message}\n${out}`); });
  return { proc, logs: () => out };
}

function stopProxy(p) {
  if (p.proc.exitCode !== null) return Promise.resolve();
  p.proc.kill('SIGTERM');
  return new Promise((r) => p.proc.once('exit', r));
}

// docs/cluster.md's HAProxy block for this test's nodes; `edit` changes
// the text further (the non-sticky variant).
async function startHaproxy(edit = (c) => c) {
  const port = await h.freePort();
  const stats = path.join(dir, `haproxy-${port}.sock`);
  const config = edit(documented('haproxy')
    .replace(/bind :443 ssl crt \S+/, `bind 127.0.0.1:${port} ssl crt ${certificate().pem}`)
    .replace(/stats socket \S+/, `stats socket ${stats}`)
    .replace(/server (node\d) 10\.0\.0\.\d:3000/g, (_, name) => `server ${name} 127.0.0.1:${nodes[name].port}`)
    // This machine's open-files limit (20,000) is below what 50,000
    // connections need; the rest stays as written.
    .replace(/maxconn \d+/, 'maxconn 2000'));
  for (const name of Object.keys(nodes)) assert.match(config, new RegExp(`server ${name} 127\\.0\\.0\\.1:${nodes[name].port}`));
  const file = path.join(dir, `haproxy-${port}.cfg`);
  fs.writeFileSync(file, config);
  const check = spawnSync(HAPROXY, ['-c', '-f', file], { encoding: 'utf8' });
  assert.equal(check.status, 0, `haproxy -c:\n${check.stdout}${check.stderr}`);
  const p = await startProxy([HAPROXY, '-db', '-f', file], port);
  return { ...p, port, url: `https://127.0.0.1:${port}`, stats: () => haproxyStatus(stats) };
}

// HAProxy's view of the backend's servers, { node1: 'UP', ... }, from its
// stats socket (`show stat`).
function haproxyStatus(statsSock) {
  return new Promise((resolve, reject) => {
    const c = net.connect(statsSock);
    let out = '';
    c.on('data', (d) => { out += d; });
    c.on('error', reject);
    c.on('end', () => {
      const [head, ...rows] = out.trim().split('\n');
      const cols = head.replace(/^# /, '').split(',');
      const st = {};
      for (const r of rows.map((l) => l.split(','))) {
        if (r[cols.indexOf('pxname')] === 'parley' && /^node\d$/.test(r[cols.indexOf('svname')])) {
          st[r[cols.indexOf('svname')]] = r[cols.indexOf('status')];
        }
      }
      resolve(st);
    });
    c.end('show stat\n');
  });
}

const allUp = (st) => Object.keys(nodes).filter((n) => !killed.has(n)).every((n) => st[n] === 'UP');

test.before(async () => {
  if (skip) return;
  await redisStart();
  await node('node1');
  await node('node2');
  await node('node3');
  lb = await startHaproxy();
  await h.waitFor(() => lb.stats(), allUp, 'HAProxy sees the three nodes up', 15000);
});

// What this file started goes with it however it ends (a failed stop, the
// runner's timeout).
process.once('exit', () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  redis.stopNow();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.after(async () => {
  try {
    sockets.forEach((s) => s.close());
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    for (const [name, srv] of Object.entries(nodes)) {
      if (killed.has(name)) continue;
      srv.proc.kill('SIGCONT');
      const st = await srv.stop();
      assert.equal(st.code, 0, srv.logs());
    }
  } finally {
    await redisKill();
    h.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- through HAProxy ----

test('through HAProxy, socket.io-client with its default transports polls, upgrades and talks across nodes; the cookie names the node', { skip, timeout: 30000 }, async () => {
  const sender = await through(lb.port, 'lb-alice');
  const from = cookieNode(sender);
  assert.match(from, /^node\d$/, 'HAProxy set its cookie on the handshake');
  // The upgrade goes to the node that holds the session (the cookie rides
  // on the WebSocket request too).
  if (sender.socket.io.engine.transport.name !== 'websocket') await h.once(sender.socket.io.engine, 'upgrade', 5000);
  assert.equal(sender.socket.io.engine.transport.name, 'websocket');
  // A receiver on another node: leastconn spreads them; a few tries at most.
  let receiver = null;
  for (let i = 0; i < 6 && !receiver; i++) {
    const c = await through(lb.port, `lb-bob-${i}`);
    if (cookieNode(c) !== from) receiver = c;
    else c.close();
  }
  assert.ok(receiver, `a client landed on a node other than ${from}`);
  const to = cookieNode(receiver);
  assert.notEqual(to, from);
  await sender.join('lb-conv');
  await receiver.join('lb-conv');
  // Redis says so too: two nodes follow the room.
  assert.equal(shardSubscribers('conversation:lb-conv'), 2, `${from} and ${to} follow the room`);
  const ack = await sender.request('message:send', text('lb-conv', 'across the balancer', 'lb-1'));
  assert.equal(ack.status, 'sent');
  assert.equal((await receiver.next('message:received')).messageId, ack.messageId);
  assert.equal((await sender.next('message:received')).messageId, ack.messageId);
  // And back the other way.
  const back = await receiver.request('message:send', text('lb-conv', 'and back', 'lb-2'));
  assert.equal((await sender.next('message:received')).messageId, back.messageId);
  sender.close();
  receiver.close();
});

test('through HAProxy, a polling-only client makes 40 round trips on its node; a request carrying another node\'s cookie gets "Session ID unknown"', { skip, timeout: 30000 }, async () => {
  const poller = await through(lb.port, 'lb-poller', { transports: ['polling'] });
  const home = cookieNode(poller);
  assert.match(home, /^node\d$/);
  const watcher = await direct(nodes[Object.keys(nodes).find((n) => n !== home)], 'lb-watcher');
  await poller.join('lb-poll');
  await watcher.join('lb-poll');
  for (let i = 0; i < 40; i++) {
    const ack = await poller.request('message:send', text('lb-poll', `poll ${i}`, `poll-${i}`), 5000);
    assert.equal(ack.status, 'sent');
    assert.equal((await watcher.next('message:received')).messageId, ack.messageId);
    assert.equal((await poller.next('message:received')).messageId, ack.messageId, 'the poller hears its own room');
  }
  assert.equal(poller.socket.io.engine.transport.name, 'polling');
  assert.equal(cookieNode(poller), home, 'every request stayed on one node');
  // The session exists on its node only: the same request sent to either
  // other node (its cookie) is refused there.
  const sid = poller.socket.io.engine.id;
  for (const other of Object.keys(nodes).filter((n) => n !== home)) {
    const r = await fetch(`${lb.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`,
      { headers: { cookie: `PARLEY_NODE=${other}` } });
    assert.equal(r.status, 400, `${other} answers the session of ${home}`);
    assert.deepEqual(await r.json(), { code: 1, message: 'Session ID unknown' });
  }
  // The poller was not disturbed.
  const last = await poller.request('message:send', text('lb-poll', 'still here', 'poll-last'), 5000);
  assert.equal(last.status, 'sent');
  poller.close();
  watcher.close();
});

test('the same HAProxy without the cookie lines (round robin) breaks a polling-only client: stickiness is what makes it work', { skip, timeout: 30000 }, async (t) => {
  const loose = await startHaproxy((c) => c
    .replace(/^\s*cookie .*\n/m, '')
    .replace(/ cookie node\d/g, '')
    .replace(/balance leastconn/, 'balance roundrobin'));
  try {
    assert.doesNotMatch(fs.readFileSync(path.join(dir, `haproxy-${loose.port}.cfg`), 'utf8'), /cookie/);
    await h.waitFor(() => loose.stats(), allUp, 'the second HAProxy sees the nodes up', 15000);
    const s = io(`https://127.0.0.1:${loose.port}/messages`, {
      query: { userId: 'lb-loose' }, transports: ['polling'], withCredentials: true, forceNew: true,
      reconnection: false, rejectUnauthorized: false,
    });
    sockets.push(s);
    // The handshake lands on one node, the next request on another, which
    // does not know the session: the client never gets connected, or is
    // dropped at its first exchange.
    const outcome = await new Promise((resolve) => {
      s.once('connect_error', (e) => resolve(`connect_error: ${e.message}`));
      s.once('disconnect', (why) => resolve(`disconnect: ${why}`));
      s.once('connect', () => {
        s.timeout(3000).emitWithAck('message:send', text('lb-loose', 'x', 'loose-1'))
          .then(() => resolve('served'), (e) => resolve(`no ack: ${e.message}`));
      });
    });
    t.diagnostic(`polling through round robin: ${outcome}`);
    assert.notEqual(outcome, 'served', 'a non-sticky balancer cannot carry a polling session');
    s.close();
  } finally {
    await stopProxy(loose);
  }
});

test('through HAProxy, the plain WebSocket endpoint and the HTTP API reach socket.io clients on other nodes', { skip, timeout: 30000 }, async () => {
  const receivers = [];
  for (const name of Object.keys(nodes)) {
    const c = await direct(nodes[name], `lb-r-${name}`);
    await c.join('lb-plain');
    receivers.push(c);
  }
  const ws = h.frameQueue(new WebSocket(`wss://127.0.0.1:${lb.port}/messages?userId=lb-plain`, { rejectUnauthorized: false }), JSON.parse);
  sockets.push(ws);
  await ws.opened;
  ws.send(JSON.stringify({ event: 'message:send', ack: 1, data: text('lb-plain', 'plain', 'plain-1') }));
  const answer = await ws.next((f) => f.ack === 1, 5000);
  assert.equal(answer.data.status, 'sent', JSON.stringify(answer));
  for (const c of receivers) assert.equal((await c.next('message:received')).messageId, answer.data.messageId);
  ws.close();

  const r = await fetch(`${lb.url}/api/conversations/lb-plain/messages`, {
    method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ senderId: 'lb-api', clientMessageId: 'api-1', type: 'text', content: 'from the API' }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  const made = await r.json();
  for (const c of receivers) assert.equal((await c.next('message:received')).messageId, made.messageId);
  for (const c of receivers) c.close();
});

// ---- through nginx ----

test('the nginx block of docs/cluster.md (hash $remote_addr): default transports and polling only work, across nodes', { skip: skipNginx, timeout: 30000 }, async () => {
  const port = await h.freePort();
  const { crt, key } = certificate();
  const site = documented('nginx')
    .replace(/listen 443 ssl;/, `listen 127.0.0.1:${port} ssl;`)
    .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${crt};`)
    .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${key};`)
    .replace(/server 10\.0\.0\.(\d):3000/g, (_, n) => `server 127.0.0.1:${nodes[`node${n}`].port}`);
  for (const srv of Object.values(nodes)) assert.match(site, new RegExp(`server 127\\.0\\.0\\.1:${srv.port} `));
  assert.match(site, /hash \$remote_addr consistent;/);
  const ndir = path.join(dir, 'nginx');
  fs.mkdirSync(ndir, { recursive: true });
  const tmpPaths = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${path.join(ndir, t)};`).join('\n  ');
  const file = path.join(ndir, 'nginx.conf');
  fs.writeFileSync(file, `daemon off;\nmaster_process off;\npid ${path.join(ndir, 'nginx.pid')};\nerror_log stderr warn;\n` +
    `events { worker_connections 1024; }\nhttp {\n  access_log off;\n  ${tmpPaths}\n${site}\n}\n`);
  const check = spawnSync(NGINX, ['-t', '-c', file, '-p', ndir], { encoding: 'utf8' });
  assert.equal(check.status, 0, `nginx -t:\n${check.stdout}${check.stderr}`);
  const proxy = await startProxy([NGINX, '-c', file, '-p', ndir], port);
  try {
    const before = {};
    for (const [name, srv] of Object.entries(nodes)) before[name] = await h.metric(srv, 'parley_sockets');
    const upgrading = await through(port, 'nx-up');
    if (upgrading.socket.io.engine.transport.name !== 'websocket') await h.once(upgrading.socket.io.engine, 'upgrade', 5000);
    const poller = await through(port, 'nx-poll', { transports: ['polling'] });
    // One client address (127.0.0.1): both on one node, the one whose
    // connection count went up.
    let home = null;
    for (const [name, srv] of Object.entries(nodes)) {
      if ((await h.metric(srv, 'parley_sockets')) > before[name]) home = name;
    }
    assert.ok(home, 'a node serves the clients that came through nginx');
    const watcher = await direct(nodes[Object.keys(nodes).find((n) => n !== home)], 'nx-watch');
    for (const c of [upgrading, poller, watcher]) await c.join('nx-conv');
    for (let i = 0; i < 20; i++) {
      const ack = await poller.request('message:send', text('nx-conv', `n${i}`, `nx-${i}`), 5000);
      assert.equal(ack.status, 'sent');
      assert.equal((await watcher.next('message:received')).messageId, ack.messageId);
      assert.equal((await upgrading.next('message:received')).messageId, ack.messageId);
    }
    assert.equal(poller.socket.io.engine.transport.name, 'polling');
    const up = await upgrading.request('message:send', text('nx-conv', 'upgraded', 'nx-up'));
    assert.equal((await watcher.next('message:received')).messageId, up.messageId);
    for (const c of [upgrading, poller, watcher]) c.close();
  } finally {
    await stopProxy(proxy);
  }
});

// ---- faults ----

test('Redis stopped: the nodes serve and store, /healthz degraded; Redis back: remote members are told cluster:resync and messages:sync returns what was sent meanwhile', { skip, timeout: 40000 }, async () => {
  const alice = await direct(nodes.node1, 'out-a');
  const bob = await direct(nodes.node2, 'out-b');
  for (const c of [alice, bob]) await c.join('conv-out');
  const seen = await alice.request('message:send', text('conv-out', 'before', 'out-0'));
  assert.equal((await bob.next('message:received')).messageId, seen.messageId);
  assert.equal((await alice.next('message:received')).messageId, seen.messageId);

  await redisKill();
  for (const srv of Object.values(nodes)) {
    await h.waitFor(() => h.metric(srv, 'parley_cluster_redis_up'), (v) => v === 0, 'redis_up falls to 0');
    const hz = await healthz(srv);
    assert.equal(hz.status, 'degraded');
    assert.match(hz.reason, /Redis unreachable at unix:\/\//);
  }
  const during = await alice.request('message:send', text('conv-out', 'while Redis is away', 'out-1'));
  assert.equal(during.status, 'sent', 'stored and acked without Redis');
  assert.equal((await alice.next('message:received')).messageId, during.messageId, 'the node serves its own sockets');

  await redisStart();
  assert.deepEqual(await resync(bob, 'subscription'), { reason: 'subscription' });
  // What a client does with the notice: messages:sync after the last it has.
  const page = await bob.request('messages:sync', { conversationId: 'conv-out', after: seen.messageId });
  assert.deepEqual(page.messages.map((m) => m.messageId), [during.messageId]);
  assert.equal(page.messages[0].content, 'while Redis is away');
  // The subscriptions were in force when the notice came: the next one
  // arrives live.
  const live = await alice.request('message:send', text('conv-out', 'Redis is back', 'out-2'));
  assert.equal((await bob.next('message:received')).messageId, live.messageId);
  assert.ok(await h.metric(nodes.node2, 'parley_cluster_resync_total{to="local"}') >= 1);
  // Every node reconnects by itself (each on its own backoff).
  for (const srv of Object.values(nodes)) {
    await h.waitFor(() => healthz(srv), (hz) => hz.status === 'ok', '/healthz says ok again', 15000);
  }
  alice.close();
  bob.close();
});

test('Redis frozen (SIGSTOP) while a node publishes 64 MiB: PARLEY_REDIS_MAX_BACKLOG holds, counted, the node\'s memory stays bounded; once Redis reads again the other nodes are told cluster:resync', { skip, timeout: 40000 }, async (t) => {
  const alice = await direct(nodes.node1, 'slow-a');
  const bob = await direct(nodes.node2, 'slow-b');
  await bob.join('conv-frozen');
  const limitBefore = await h.metric(nodes.node1, 'parley_limits_total{limit="redis_backlog"}') || 0;
  const unsentBefore = await h.metric(nodes.node1, 'parley_cluster_unsent_total{reason="backlog"}');
  const commandsBefore = await h.metric(nodes.node1, 'parley_cluster_commands_refused_total');
  const rssBefore = rss(nodes.node1);
  let carol = null;
  redis.signal('SIGSTOP');
  try {
    // 256 broadcasts of 256 KiB into a room nobody follows: each goes to
    // Redis, which reads nothing now.
    const blob = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 256; i++) {
      await alice.request('test:broadcast', { rooms: ['nobody-here'], event: 'blob', data: blob }, 5000);
    }
    // A user who connects now: her presence is not written (it would
    // grow the backlog), but owed.
    carol = await direct(nodes.node1, 'slow-c');
    const refused = await h.metric(nodes.node1, 'parley_limits_total{limit="redis_backlog"}') - limitBefore;
    const unsent = await h.metric(nodes.node1, 'parley_cluster_unsent_total{reason="backlog"}') - unsentBefore;
    const commands = await h.metric(nodes.node1, 'parley_cluster_commands_refused_total') - commandsBefore;
    const grown = rss(nodes.node1) - rssBefore;
    t.diagnostic(`backlog limit: ${refused} of 256 broadcasts stayed on the node; RSS grew ${(grown / 1048576).toFixed(1)} MiB`);
    // 1 MiB of backlog, plus what the kernel's socket buffer took: all
    // but a few dozen stayed on the node.
    assert.ok(refused >= 200, `the backlog limit refused ${refused} of 256`);
    // The modules' commands (carol's presence, the broadcasts' room
    // history) are held to the same limit.
    assert.ok(commands >= 1, `carol's presence was refused (${commands})`);
    assert.equal(unsent + commands, refused);
    assert.ok(grown < 24 * 1024 * 1024, `the node grew by ${grown} bytes for 64 MiB published`);
    assert.match(nodes.node1.logs(), /more than 1048576 bytes unsent to Redis \(PARLEY_REDIS_MAX_BACKLOG\)/);
  } finally {
    redis.signal('SIGCONT');
  }
  // Redis reads the backlog; node1 tells the others what stayed behind,
  // and writes the presence it owed: node2 counts carol.
  assert.deepEqual(await resync(bob, 'unsent'), { reason: 'unsent' });
  await h.waitFor(async () => (await fetch(`${nodes.node2.url}/api/users/slow-c/presence`,
    { headers: { authorization: `Bearer ${KEY}` } })).json(),
  (p) => p.sockets === 1, 'node2 counts the socket node1 could not write while Redis stalled', 15000);
  carol.close();
  assert.ok(await h.metric(nodes.node1, 'parley_cluster_resync_total{to="remote"}') >= 1);
  const ack = await alice.request('message:send', text('conv-frozen', 'flowing again', 'fz-1'));
  assert.equal((await bob.next('message:received')).messageId, ack.messageId);
  alice.close();
  bob.close();
});

test('a node too slow for Redis\'s pubsub output limit is closed by Redis; it reconnects, subscribes again and tells its sockets cluster:resync', { skip, timeout: 40000 }, async () => {
  const alice = await direct(nodes.node1, 'lag-a');
  const bob = await direct(nodes.node2, 'lag-b');
  await bob.join('conv-lag');
  assert.equal(shardSubscribers('conversation:conv-lag'), 1);
  const resyncs = await h.metric(nodes.node2, 'parley_cluster_resync_total{to="local"}');
  const old = cli('CONFIG', 'GET', 'client-output-buffer-limit');
  cli('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 256kb 64kb 1');
  nodes.node2.proc.kill('SIGSTOP');
  try {
    // node2 reads nothing now: Redis's buffer for its subscriber fills.
    const blob = 'y'.repeat(64 * 1024);
    for (let i = 0; i < 48; i++) {
      await alice.request('test:broadcast', { rooms: ['conversation:conv-lag'], event: 'lag:burst', data: blob }, 5000);
    }
    await h.waitFor(async () => shardSubscribers('conversation:conv-lag'), (n) => n === 0,
      'Redis closed the slow subscriber');
  } finally {
    nodes.node2.proc.kill('SIGCONT');
    cli('CONFIG', 'SET', 'client-output-buffer-limit', old.split('\n').slice(1).join(' ') || old);
  }
  assert.deepEqual(await resync(bob, 'subscription'), { reason: 'subscription' });
  assert.equal(await h.metric(nodes.node2, 'parley_cluster_resync_total{to="local"}'), resyncs + 1);
  assert.equal(shardSubscribers('conversation:conv-lag'), 1, 'node2 follows the room again');
  assert.match(nodes.node2.logs(), /Redis link subscribe lost/);
  const ack = await alice.request('message:send', text('conv-lag', 'after the lag', 'lag-1'));
  let got;
  do { got = await bob.next('message:received'); } while (got.messageId !== ack.messageId);
  alice.close();
  bob.close();
});

test('a node killed with -9 behind HAProxy: its clients reconnect through the balancer to the others, every acked message is there, the health check takes it out', { skip, timeout: 40000 }, async () => {
  await h.waitFor(() => lb.stats(), allUp, 'HAProxy sees every node up (after the SIGSTOP above)', 15000);
  const reconnecting = { reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000 };
  const alice = await through(lb.port, 'kill-a', reconnecting);
  const victim = cookieNode(alice);
  assert.match(victim, /^node\d$/);
  const watcher = await direct(nodes[Object.keys(nodes).find((n) => n !== victim)], 'kill-w');
  await alice.join('conv-kill');
  await watcher.join('conv-kill');
  // Acked before the kill: 20, then 20 more in flight as it dies.
  const acked = [];
  for (let i = 0; i < 20; i++) {
    acked.push((await alice.request('message:send', text('conv-kill', `k${i}`, `k-${i}`))).messageId);
  }
  const inFlight = Array.from({ length: 20 }, (_, i) =>
    alice.request('message:send', text('conv-kill', `f${i}`, `f-${i}`), 4000).then((a) => a, () => null));
  killed.add(victim);
  await nodes[victim].kill('SIGKILL');
  const late = (await Promise.all(inFlight)).filter((a) => a && a.status === 'sent').map((a) => a.messageId);
  acked.push(...late);

  // socket.io-client reconnects by itself; the balancer sends it elsewhere.
  if (!alice.socket.connected) await h.once(alice.socket, 'connect', 15000);
  const now = cookieNode(alice);
  assert.notEqual(now, victim, 'reconnected to a live node');
  await alice.join('conv-kill');
  const page = await alice.request('messages:sync', { conversationId: 'conv-kill', limit: 100 });
  const stored = new Set(page.messages.map((m) => m.messageId));
  for (const id of acked) assert.ok(stored.has(id), `acked message ${id} is in the store`);
  // HAProxy took the dead node out; new clients go to the others.
  await h.waitFor(() => lb.stats(), (st) => st[victim] === 'DOWN', `HAProxy marks ${victim} DOWN`, 15000);
  for (let i = 0; i < 4; i++) {
    const c = await through(lb.port, `kill-new-${i}`);
    assert.notEqual(cookieNode(c), victim);
    c.close();
  }
  // The reconnected client talks across nodes again.
  const ack = await alice.request('message:send', text('conv-kill', 'after the kill', 'k-after'));
  let got;
  do { got = await watcher.next('message:received'); } while (got.messageId !== ack.messageId);
  alice.close();
  watcher.close();
});
