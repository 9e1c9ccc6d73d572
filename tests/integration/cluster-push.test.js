// cluster-push.test.js - plugins/push on several nodes (issue 19 item 4):
// each delivery has an owner, the node that enqueued it, and only the owner
// tries it. A push waiting on A for a user who then connects on B is not
// sent (A asks the cluster before each try); with a push on A retrying
// against a failing webhook, a node C that starts, and starts again, does
// not send it too; A killed with -9, exactly one survivor takes it over and
// sends it, under the same delivery id. Which node sent what is read from
// each node's parley_push_webhook_requests_total. Three nodes on one
// PostgreSQL database, a private Redis on a Unix socket and a webhook of
// the test's own on loopback. Runs with PARLEY_TEST_PG and Debian's
// redis-server.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const { redisSkip, privateRedis } = require('./redis-kit');
const skip = redisSkip;

const KEY = 'cluster-push-key';
const SECRET = 'cluster-push-secret';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-cpush-'));
const redis = privateRedis(dir);
const { sock, cli } = redis;
const redisStart = () => redis.start();
const shared = path.join(dir, 'store');
const CONFIG = path.join(dir, 'parley.conf.lua');
// A push waits 2 s for more messages (time for the user to connect
// elsewhere); a failed try comes again within 0.1 to 0.4 s.
fs.writeFileSync(CONFIG, `return { plugin_config = { push = { collapse_ms = 2000,
  backoff_ms = 200, max_backoff_ms = 400, max_attempts = 100, tick_ms = 50, calls = false } } }\n`);
const nodes = {};
const opened = [];

// The webhook: records each POST ({id, userId, status}) and answers what
// `answer(body)` says.
const hook = { posts: [], answer: () => 200 };


async function node(name) {
  nodes[name] = await h.startParley({
    env: { PARLEY_DATA_DIR: shared, PARLEY_REDIS: `unix://${sock}`, PARLEY_NODE_ID: name,
      PARLEY_PLUGINS: 'push', PARLEY_CONFIG: CONFIG, PARLEY_API_KEY: KEY,
      PARLEY_PUSH_URL: hook.url, PARLEY_PUSH_SECRET: SECRET },
  });
  return nodes[name];
}

async function user(srv, userId) {
  const s = h.sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] });
  await h.connected(s);
  opened.push(s);
  return s;
}

async function send(s, conversationId, content) {
  const ack = await s.timeout(5000).emitWithAck('message:send',
    { conversationId, clientMessageId: crypto.randomUUID(), type: 'text', content });
  assert.equal(ack.status, 'sent', JSON.stringify(ack));
}

const members = async (conv, list) => {
  const r = await fetch(`${nodes.A.url}/api/conversations/${conv}/members`, { method: 'PUT',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ members: list }) });
  assert.equal(r.status, 200);
};

const requests = (n) => h.metric(nodes[n], 'parley_push_webhook_requests_total');
const postsTo = (userId) => hook.posts.filter((p) => p.userId === userId);
// Waits until `n` POSTs for `userId` came.
const posted = (userId, n, ms = 15000) => h.waitFor(() => postsTo(userId).length, (v) => v >= n,
  `${n} POST(s) for ${userId}`, ms);

test.before(async () => {
  if (skip) return;
  hook.server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      const body = JSON.parse(raw);
      const status = hook.answer(body);
      hook.posts.push({ id: req.headers['x-parley-delivery'], userId: body.userId, status });
      res.writeHead(status);
      res.end();
    });
  });
  await new Promise((r) => hook.server.listen(0, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${hook.server.address().port}/hook`;
  await redisStart();
  await node('A');
  await node('B');
});

process.once('exit', () => {
  redis.stopNow();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.after(async () => {
  try {
    for (const s of opened) s.close();
    for (const srv of Object.values(nodes)) {
      if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) continue;
      const st = await srv.stop();
      assert.equal(st.code, 0, srv.logs());
    }
  } finally {
    await redis.stop();
    if (hook.server) { hook.server.closeAllConnections(); hook.server.close(); }
    h.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a push waiting on A for a user who then connects on B is not sent', { skip, timeout: 60000 }, async () => {
  await members('pb', ['pb-s', 'pb-r']);
  const s = await user(nodes.A, 'pb-s');
  await send(s, 'pb', 'are you there');
  await user(nodes.B, 'pb-r');
  // A's try comes after collapse_ms: A asks the cluster, finds pb-r on B,
  // and drops the push (counted) instead of POSTing it.
  await h.waitFor(() => h.metric(nodes.A, 'parley_push_cancelled_total'), (v) => v === 1,
    'A cancelled the push');
  assert.equal(await h.metric(nodes.A, 'parley_push_outbox'), 0);
  assert.deepEqual(postsTo('pb-r'), []);
  assert.equal(await requests('A'), 0);
});

test('a push retrying on A: C started, and started again, does not send it too; A killed with -9, exactly one survivor takes it and sends it, same delivery id', { skip, timeout: 120000 }, async () => {
  await members('pc', ['pc-s', 'pc-r']);
  await members('pc2', ['pc-t', 'pc-q']);
  let failing = true;
  hook.answer = (b) => (b.userId === 'pc-r' && failing ? 500 : 200);
  const s = await user(nodes.A, 'pc-s');
  await send(s, 'pc', 'ring ring');
  await posted('pc-r', 2);
  const id = postsTo('pc-r')[0].id;
  assert.ok(postsTo('pc-r').every((p) => p.id === id));

  for (let round = 1; round <= 2; round++) {
    if (round === 2) await nodes.C.stop();
    await node('C');
    // C has read its outbox once it enqueues a push of its own (the
    // stored hook reads it first), and sends that one (answered 200).
    const t = await user(nodes.C, 'pc-t');
    await send(t, 'pc2', `from C, round ${round}`);
    await posted('pc-q', round);
    // A tries again twice after that: C had every chance to send A's too.
    const a = await requests('A');
    await h.waitFor(() => requests('A'), (v) => v >= a + 2, 'A retries');
    assert.equal(await requests('C'), 1, `C sent A's push (round ${round})`);
    assert.equal(await requests('B'), 0, 'B sent A\'s push');
    t.close();
  }

  const before = postsTo('pc-r').length;
  await nodes.A.kill('SIGKILL');
  failing = false;
  // A's liveness key expires (15 s), a survivor counts A out, each node
  // reads the death (node_gone) and tries to take A's deliveries: one wins.
  const sent = await h.waitFor(() => postsTo('pc-r').filter((p) => p.status === 200), (v) => v.length >= 1,
    'a survivor sends A\'s push', 30000);
  assert.equal(sent[0].id, id, 'the same delivery id as A\'s tries');
  const taken = await Promise.all(['B', 'C'].map((n) => h.metric(nodes[n], 'parley_push_taken_total')));
  assert.equal(taken[0] + taken[1], 1, `taken over by B ${taken[0]}, C ${taken[1]}`);
  const winner = taken[0] === 1 ? 'B' : 'C';
  await h.waitFor(() => h.metric(nodes[winner], 'parley_push_outbox'), (v) => v === 0, 'the winner\'s outbox empties');
  assert.equal(postsTo('pc-r').length, before + 1, 'sent again after its 200');
  // Nothing of A's is left in the store under A's name.
  assert.equal(await h.metric(nodes.B, 'parley_push_outbox') + await h.metric(nodes.C, 'parley_push_outbox'), 0);
});
