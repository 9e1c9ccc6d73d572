// budget.test.js - a host function whose result the memory budget refuses
// strands nothing (PARLEY_SCRIPT_MEMORY at 1 MiB): parley.json.encode of a
// 64 MB text, crypto.base64_encode of 1.5 MB, store.send of a 4 MB message
// and kv.keys of 40,000 keys each build their result in C memory (or hold a
// store cursor) first, and the Lua value it becomes is refused: the script
// gets "not enough memory" from the call, the refusal is counted, and the
// memory is freed. The sanitizer build's LeakSanitizer checks that at stop
// (the harness fails on a report); the normal build, an RSS bound on ten
// refused 64 MB encodes.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const h = require('./harness');

// RSS says nothing under ASan, which keeps freed memory in quarantine.
const sanitized = /sanitizer=/.test(require('node:child_process')
  .execFileSync(h.BINARY, ['--version'], { encoding: 'utf8' }));

let srv;
let client;
let bystander;

test.before(async () => {
  srv = await h.startParley({ env: { PARLEY_PLUGINS: 'testkit,misbehave',
    PARLEY_SCRIPT_MEMORY: String(1 << 20) } });
  client = h.sioClient(srv, '/messages', { query: { userId: 'budget' }, transports: ['websocket'] });
  bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(client);
  await h.connected(bystander);
});
test.after(async () => {
  client.close();
  bystander.close();
  const st = await srv.stop(); // fails on a LeakSanitizer report
  assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
});

async function metric(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

// The call inside the handler raised "not enough memory" (see misbehave).
const REFUSED = { refused: true, err: 'not enough memory' };

async function refused(event, data = {}) {
  const before = await metric('parley_lua_memory_refusals_total');
  assert.deepEqual(await client.timeout(10000).emitWithAck(event, data), REFUSED);
  assert.ok(await metric('parley_lua_memory_refusals_total') > before, 'the refusal is counted');
  assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
}

for (const [event, what] of [
  ['misbehave:encode-big', 'parley.json.encode of 1,000 references to one 64 KB string (64 MB of text)'],
  ['misbehave:send-big', 'store.send of a 4 MB message'],
]) {
  test(`${what} (${event}): the budget refuses the result, the script gets "not enough memory", nothing is stranded`, async () => {
    await refused(event);
  });
}

// The budget counts what a call adds, less what the collector frees during
// it: the result must outgrow the 1 MiB budget plus all the garbage the heap
// (about 500 KB here) could hold, so it is 2 MB, of a 1.5 MB text that
// comes from the client (decoded before the call begins) to a server that
// takes messages of 2 MB.
test('crypto.base64_encode of 1.5 MB (misbehave:base64-big): the budget refuses the result, the script gets "not enough memory", nothing is stranded', async () => {
  const small = await h.startParley({ env: { PARLEY_PLUGINS: 'testkit,misbehave',
    PARLEY_SCRIPT_MEMORY: String(1 << 20), PARLEY_MAX_PAYLOAD: '2000000',
    PARLEY_MAX_BINARY_PENDING: '2000000' } });
  const c = h.sioClient(small, '/messages', { query: { userId: 'budget' }, transports: ['websocket'] });
  try {
    await h.connected(c);
    assert.deepEqual(await c.timeout(10000).emitWithAck('misbehave:base64-big', 'y'.repeat(1536000)), REFUSED);
    assert.equal(await c.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
  } finally {
    c.close();
    const st = await small.stop(); // fails on a LeakSanitizer report
    assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${small.logs()}`);
  }
});

test('kv.keys of 40,000 keys: the budget refuses the table mid-way, the store\'s cursor is closed (kv works after)', async () => {
  for (let from = 0; from < 40000; from += 2000) {
    assert.equal(await client.timeout(20000).emitWithAck('misbehave:kv-fill', { from, n: 2000 }), true);
  }
  assert.equal(await client.timeout(5000).emitWithAck('misbehave:kv-keys', { limit: 10 }), 10);
  await refused('misbehave:kv-keys', { limit: 100000 });
  assert.equal(await client.timeout(5000).emitWithAck('misbehave:kv-keys', { limit: 10 }), 10);
});

test('ten refused 64 MB encodes leave parley\'s RSS within one of them (no C buffer stranded)', { skip: sanitized && 'RSS says nothing under ASan' }, async () => {
  await refused('misbehave:encode-big');
  const before = rssKb(srv.proc.pid);
  for (let i = 0; i < 10; i++) await refused('misbehave:encode-big');
  const grown = rssKb(srv.proc.pid) - before;
  assert.ok(grown < 64 * 1024, `RSS grew by ${grown} kB`);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
