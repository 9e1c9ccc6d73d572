// ops.test.js - running parley: /healthz, /metrics, 404s, --help, refusal
// of bad settings, the config file, and SIGTERM (SPEC §1, §6).
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const {
  BINARY, startParley, sioClient, connected, once, plainClient, pollHandshake, freePort,
} = require('./harness');

function within(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); }),
  ]);
}

async function metrics(srv) {
  const r = await fetch(`${srv.url}/metrics`);
  const text = await r.text();
  return { status: r.status, type: r.headers.get('content-type'), text };
}

// The value of one sample line `name{labels} value`, or null when absent.
function sample(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return null;
}

// Runs the binary with only the given environment, from an empty folder
// (so no ./parley.conf.lua is picked up); bounded so a server that starts
// anyway cannot hang the test.
function runParley(args, env) {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-ops-'));
  return spawnSync(BINARY, args, {
    cwd,
    env: { PATH: process.env.PATH, PARLEY_DATA_DIR: path.join(cwd, 'data'), ...env },
    encoding: 'utf8',
    timeout: 5000,
  });
}

describe('HTTP operations endpoints', () => {
  let srv;
  before(async () => { srv = await startParley(); });
  after(async () => {
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley exit: expected code 0, got ${JSON.stringify(st)}\n${srv.logs()}`);
  });

  test('/healthz answers 200 JSON with status "ok"', async () => {
    const r = await fetch(`${srv.url}/healthz`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /application\/json/);
    const body = await r.json();
    assert.equal(body.status, 'ok', `body: ${JSON.stringify(body)}`);
  });

  test('/metrics is Prometheus text with parley_connections for websocket and polling that count open connections', async () => {
    const before = await metrics(srv);
    assert.equal(before.status, 200);
    assert.match(before.type || '', /^text\/plain/);
    assert.match(before.text, /^# (HELP|TYPE) /m, 'no HELP/TYPE lines');
    const ws0 = sample(before.text, 'parley_connections{transport="websocket"}');
    const poll0 = sample(before.text, 'parley_connections{transport="polling"}');
    assert.notEqual(ws0, null, `no parley_connections{transport="websocket"} in:\n${before.text}`);
    assert.notEqual(poll0, null, `no parley_connections{transport="polling"} in:\n${before.text}`);

    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`);
    await once(ws, 'message');
    const { sid } = await pollHandshake(srv);
    try {
      const during = await metrics(srv);
      assert.equal(sample(during.text, 'parley_connections{transport="websocket"}'), ws0 + 1, 'websocket gauge after one more websocket');
      assert.equal(sample(during.text, 'parley_connections{transport="polling"}'), poll0 + 1, 'polling gauge after one more polling session');
    } finally {
      ws.terminate();
      await fetch(`${srv.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '1' });
    }
  });

  test('/metrics: parley_events_in_total{event="test:echo"} grows by the number of test:echo events received', async () => {
    const series = 'parley_events_in_total{event="test:echo"}';
    const n0 = sample((await metrics(srv)).text, series) || 0;
    const s = sioClient(srv, '/messages', { query: { userId: 'metrics-user' } });
    try {
      await connected(s);
      for (let i = 0; i < 3; i++) assert.equal(await s.timeout(3000).emitWithAck('test:echo', i), i);
    } finally {
      s.disconnect();
    }
    const n1 = sample((await metrics(srv)).text, series);
    assert.equal(n1, n0 + 3, `${series}: before ${n0}, after 3 emits ${n1}`);
  });

  test('/metrics: events of two names in turns are each counted under their own name, in and out', async () => {
    const names = ['test:echo', 'test:join']; // the same length
    const inSeries = (e) => `parley_events_in_total{event="${e}"}`;
    const outSeries = 'parley_events_out_total{event="test:bounced"}';
    const text0 = (await metrics(srv)).text;
    const in0 = names.map((e) => sample(text0, inSeries(e)) || 0);
    const out0 = sample(text0, outSeries) || 0;
    const s = sioClient(srv, '/messages', { query: { userId: 'metrics-turns' } });
    try {
      await connected(s);
      for (let i = 0; i < 4; i++) {
        await s.timeout(3000).emitWithAck('test:echo', i);
        await s.timeout(3000).emitWithAck('test:join', { room: 'room:turns' });
        await s.timeout(3000).emitWithAck('test:echo', i);
      }
      await s.timeout(3000).emitWithAck('test:bounce', 1);
      await s.timeout(3000).emitWithAck('test:bounce', 2);
    } finally {
      s.disconnect();
    }
    const text1 = (await metrics(srv)).text;
    assert.equal(sample(text1, inSeries('test:echo')), in0[0] + 8);
    assert.equal(sample(text1, inSeries('test:join')), in0[1] + 4);
    assert.equal(sample(text1, outSeries), out0 + 2);
  });

  test('/metrics: parley_errors_total{code="404"} grows after an unknown event', async () => {
    const series = 'parley_errors_total{code="404"}';
    const n0 = sample((await metrics(srv)).text, series) || 0;
    const ws = plainClient(srv, 'userId=metrics-404');
    try {
      await ws.opened;
      ws.sendJson({ event: 'no:such:event', data: {} });
      const err = await ws.next((f) => f.event === 'error');
      assert.equal(err.data.statusCode, 404);
    } finally {
      ws.terminate();
    }
    const n1 = sample((await metrics(srv)).text, series);
    assert.equal(n1, n0 + 1, `${series}: before ${n0}, after one unknown event ${n1}`);
  });

  test('/metrics: parley_events_out_total{event="test:bounced"} grows by the events delivered', async () => {
    const series = 'parley_events_out_total{event="test:bounced"}';
    const n0 = sample((await metrics(srv)).text, series) || 0;
    const s = sioClient(srv, '/messages', { query: { userId: 'metrics-out' } });
    try {
      await connected(s);
      for (let i = 0; i < 4; i++) {
        const got = once(s, 'test:bounced', 3000);
        s.emit('test:bounce', { i });
        assert.deepEqual(await got, { i });
      }
    } finally {
      s.disconnect();
    }
    const n1 = sample((await metrics(srv)).text, series);
    assert.equal(n1, n0 + 4, `${series}: before ${n0}, after 4 bounces ${n1}`);
  });

  test('/metrics: parley_lua_seconds_total, parley_lua_calls_total and parley_lua_allocated_bytes_total grow while Lua runs', async () => {
    const before = (await metrics(srv)).text;
    const t0 = sample(before, 'parley_lua_seconds_total');
    const c0 = sample(before, 'parley_lua_calls_total');
    assert.ok(Number.isFinite(t0) && t0 >= 0, `parley_lua_seconds_total = ${t0}`);
    const s = sioClient(srv, '/messages', { query: { userId: 'metrics-lua' } });
    try {
      await connected(s);
      for (let i = 0; i < 200; i++) await s.timeout(3000).emitWithAck('test:echo', `${i}`.padEnd(1000, 'x'));
    } finally {
      s.disconnect();
    }
    const after = (await metrics(srv)).text;
    assert.ok(sample(after, 'parley_lua_calls_total') >= c0 + 200, 'fewer Lua calls than events');
    assert.ok(sample(after, 'parley_lua_seconds_total') > t0,
      `parley_lua_seconds_total did not grow over 200 events: ${t0}`);
    // 200 distinct 1,000-character strings (Lua interns equal ones): at
    // least that much was allocated.
    assert.ok(sample(after, 'parley_lua_allocated_bytes_total') >=
      sample(before, 'parley_lua_allocated_bytes_total') + 200 * 1000,
      'parley_lua_allocated_bytes_total grew by less than the payloads decoded');
  });

  test('/metrics: sends that arrive together share store commits (group commit: batches > commits)', async () => {
    const before = (await metrics(srv)).text;
    const b0 = sample(before, 'parley_store_batches_total');
    const k0 = sample(before, 'parley_store_commits_total');
    const t0 = sample(before, 'parley_pg_transactions_total');
    const clients = [];
    try {
      for (let i = 0; i < 10; i++) {
        const s = sioClient(srv, '/messages', { query: { userId: `group-${i}` } });
        clients.push(s);
        await connected(s);
      }
      await Promise.all(clients.flatMap((s, i) => Array.from({ length: 20 }, (_, j) =>
        s.timeout(5000).emitWithAck('message:send', {
          conversationId: `group-commit-${i}`, clientMessageId: `g-${j}`, type: 'text', content: `m${j}`,
        }).then((ack) => assert.equal(ack.status, 'sent', JSON.stringify(ack))))));
    } finally {
      for (const s of clients) s.disconnect();
    }
    const after = (await metrics(srv)).text;
    if (process.env.PARLEY_TEST_PG) {
      // PostgreSQL: the 200 sends' writes in fewer write transactions.
      const transactions = sample(after, 'parley_pg_transactions_total') - t0;
      assert.ok(transactions > 0 && transactions < 200,
        `200 concurrent sends in ${transactions} PostgreSQL transactions`);
      return;
    }
    const batches = sample(after, 'parley_store_batches_total') - b0;
    const commits = sample(after, 'parley_store_commits_total') - k0;
    assert.ok(batches >= 200, `200 acked sends, ${batches} batches`);
    assert.ok(commits > 0 && commits < batches,
      `200 concurrent sends: ${batches} batches in ${commits} commits (one fsync each?)`);
  });

  test('an unknown path answers 404 JSON', async () => {
    const r = await fetch(`${srv.url}/no/such/path`);
    assert.equal(r.status, 404);
    assert.match(r.headers.get('content-type') || '', /application\/json/);
    const body = await r.json();
    assert.equal(body.statusCode, 404, `body: ${JSON.stringify(body)}`);
  });
});

describe('settings', () => {
  test('parley --help exits 0 and lists every setting', () => {
    const r = runParley(['--help'], {});
    assert.equal(r.status, 0, `exit status: ${r.status} ${r.signal || ''}\n${r.stderr}`);
    const out = r.stdout + r.stderr;
    for (const name of ['PORT', 'PARLEY_DATA_DIR', 'FRONTEND_URL', 'JWT_SECRET', 'PARLEY_API_KEY',
      'PARLEY_PING_INTERVAL', 'PARLEY_PING_TIMEOUT', 'PARLEY_MAX_PAYLOAD', 'PARLEY_SCRIPTS',
      'PARLEY_PLUGINS', 'PARLEY_LOG']) {
      assert.match(out, new RegExp(`\\b${name}\\b`), `--help does not mention ${name}:\n${out}`);
    }
  });

  for (const [name, value] of [['PORT', 'abc'], ['PARLEY_PING_INTERVAL', '5'], ['PARLEY_LOG', 'loud']]) {
    test(`a bad value ${name}=${value} is refused at start: non-zero exit and a message naming ${name}`, () => {
      const r = runParley([], { PORT: String(40000 + Math.floor(Math.random() * 20000)), [name]: value });
      assert.equal(r.signal, null, `parley did not exit by itself (killed by ${r.signal}): it started with ${name}=${value}`);
      assert.notEqual(r.status, 0, `exit status: expected non-zero, got ${r.status}`);
      assert.match(r.stderr + r.stdout, new RegExp(`\\b${name}\\b`), `message does not name ${name}: ${r.stderr}`);
    });
  }

  for (const [what, body, name] of [
    ['a bad value', 'return { ping_interval = 5 }', 'ping_interval'],
    ['a value of the wrong type', 'return { port = "high" }', 'port'],
    ['an unknown setting', 'return { prot = 3000 }', 'prot'],
    ['a file that does not compile', 'return { port = ', 'parley.conf.lua'],
  ]) {
    test(`a config file with ${what} is refused at start, naming ${name}`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-badconf-'));
      const file = path.join(dir, 'parley.conf.lua');
      fs.writeFileSync(file, body + '\n');
      const r = runParley([], { PORT: String(40000 + Math.floor(Math.random() * 20000)), PARLEY_CONFIG: file });
      assert.equal(r.signal, null, `parley did not exit by itself: it started with ${body}`);
      assert.notEqual(r.status, 0, `exit status: expected non-zero, got ${r.status}`);
      assert.ok((r.stderr + r.stdout).includes(name), `message does not name ${name}: ${r.stderr}`);
    });
  }

  test('a config file given by PARLEY_CONFIG (return { port = N }) is honoured: parley listens on N', async () => {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-conf-'));
    const file = path.join(dir, 'parley.conf.lua');
    fs.writeFileSync(file, `return { port = ${port} }\n`);
    // PORT unset, so only the file can name the port (startParley polls it).
    const srv = await startParley({ port, env: { PORT: undefined, PARLEY_CONFIG: file } });
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(r.status, 200);
      assert.equal((await r.json()).status, 'ok');
    } finally {
      const st = await srv.stop();
      assert.equal(st.code, 0, `exit: ${JSON.stringify(st)}\n${srv.logs()}`);
    }
  });

  test('SIGTERM: a connected client is told (disconnect) and parley exits 0', async () => {
    const srv = await startParley();
    const s = sioClient(srv, '/messages', { query: { userId: 'drained' } });
    await connected(s);
    const told = once(s, 'disconnect', 5000);
    srv.proc.kill('SIGTERM');
    const st = await within(srv.exited, 10000, 'parley did not exit after SIGTERM');
    assert.deepEqual(st, { code: 0, signal: null }, `exit after SIGTERM:\n${srv.logs()}`);
    await told;
    s.disconnect();
    await srv.stop();
  });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
