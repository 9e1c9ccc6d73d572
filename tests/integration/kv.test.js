// kv.test.js - key-value storage for scripts and plugins (parley.kv), in
// the LMDB store under PARLEY_DATA_DIR: read-your-writes, TTL, atomic
// increments, one namespace per plugin, kv.wait() acking only once the
// write is durable, and values that survive kill -9 and a restart.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-kv-'));
const env = { PARLEY_PLUGINS: 'testkit,kvpeer' };
let srv;
let s;

async function connect() {
  s = h.sioClient(srv, '/messages', { query: { userId: 'kv-user' }, transports: ['websocket'] });
  await h.connected(s);
}
const ask = (event, data) => s.timeout(5000).emitWithAck(event, data);

test.before(async () => {
  srv = await h.startParley({ dataDir, env });
  await connect();
});
test.after(async () => {
  s.close();
  assert.equal((await srv.stop()).code, 0);
});

test('a value set is read back at once, with its JSON type: string, number, object with an empty array, big integer', async () => {
  for (const value of ['hello', 42, { list: [], n: 12345678901234567890n.toString() }, [1, 'two'], true]) {
    assert.deepEqual(await ask('test:kv-set', { key: 'k', value }), { value });
  }
});

// Reads `key` until it is gone; resolves with the reads it took (a wait for
// the expiry, bounded, instead of a sleep that guesses it).
async function untilGone(key, ms = 10000) {
  const deadline = Date.now() + ms;
  for (let reads = 1; ; reads++) {
    const got = await ask('test:kv-get', { key });
    if (got.value === undefined) return reads;
    if (Date.now() > deadline) assert.fail(`${key} still there after ${ms} ms: ${JSON.stringify(got)}`);
    await h.sleep(10);
  }
}

test('an entry set with ttl 150 ms is there at once and then goes; one without a ttl stays', async () => {
  assert.deepEqual(await ask('test:kv-set', { key: 'short', value: 'x', ttl: 150 }), { value: 'x' });
  assert.deepEqual(await ask('test:kv-set', { key: 'long', value: 'y' }), { value: 'y' });
  await untilGone('short');
  assert.deepEqual(await ask('test:kv-get', { key: 'long' }), { value: 'y' });
});

test('200 concurrent increments from 4 sockets end at exactly 200; incr of a string is an error', async () => {
  const others = await Promise.all([1, 2, 3].map(async (i) => {
    const o = h.sioClient(srv, '/messages', { query: { userId: `inc${i}` }, transports: ['websocket'] });
    await h.connected(o);
    return o;
  }));
  const all = [s, ...others];
  await Promise.all(Array.from({ length: 200 }, (_, i) =>
    all[i % 4].timeout(5000).emitWithAck('test:kv-incr', { key: 'counter' })));
  assert.deepEqual(await ask('test:kv-get', { key: 'counter' }), { value: 200 });
  await ask('test:kv-set', { key: 'word', value: 'abc' });
  const err = await ask('test:kv-incr', { key: 'word' });
  assert.equal(err.statusCode, 400);
  others.forEach((o) => o.close());
});

test('kv.cas: set if absent, swap if equal, delete if equal; a mismatch writes nothing; tables are refused', async () => {
  const cas = (key, expected, nw, ttl) => ask('test:kv-cas', { key, expected, new: nw, ttl });
  assert.deepEqual(await cas('slot', undefined, 'a'), { ok: true });
  assert.deepEqual(await cas('slot', undefined, 'b'), { ok: false }, 'set-if-absent overwrote');
  assert.deepEqual(await cas('slot', 'b', 'c'), { ok: false }, 'swapped on a wrong expected value');
  assert.deepEqual(await ask('test:kv-get', { key: 'slot' }), { value: 'a' });
  assert.deepEqual(await cas('slot', 'a', 7), { ok: true });
  assert.deepEqual(await cas('slot', '7', 8), { ok: false }, 'the string "7" matched the number 7');
  assert.deepEqual(await cas('slot', 7, true), { ok: true });
  assert.deepEqual(await ask('test:kv-get', { key: 'slot' }), { value: true });
  assert.deepEqual(await cas('slot', false, undefined), { ok: false });
  assert.deepEqual(await cas('slot', true, undefined), { ok: true });
  assert.deepEqual(await ask('test:kv-get', { key: 'slot' }), {});
  assert.deepEqual(await cas('slot', undefined, undefined), { ok: true }, 'absent is nil');
  assert.equal((await cas('slot', undefined, { t: 1 })).statusCode, 400);
  // An expired value is absent: set-if-absent takes its place.
  assert.deepEqual(await cas('short', undefined, 'x', 300), { ok: true });
  assert.deepEqual(await cas('short', undefined, 'y'), { ok: false });
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(await cas('short', 'x', 'z'), { ok: false }, 'an expired value matched');
  assert.deepEqual(await cas('short', undefined, 'y'), { ok: true });
  assert.deepEqual(await ask('test:kv-get', { key: 'short' }), { value: 'y' });
});

test('100 concurrent set-if-absent from 4 sockets: exactly one wins, and its value is the one kept', async () => {
  const others = await Promise.all([1, 2, 3].map(async (i) => {
    const o = h.sioClient(srv, '/messages', { query: { userId: `cas${i}` }, transports: ['websocket'] });
    await h.connected(o);
    return o;
  }));
  const all = [s, ...others];
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    all[i % 4].timeout(5000).emitWithAck('test:kv-cas', { key: 'race', new: `w${i}` })));
  const won = answers.map((a, i) => (a.ok === true ? i : -1)).filter((i) => i >= 0);
  assert.equal(won.length, 1, JSON.stringify(answers));
  assert.deepEqual(await ask('test:kv-get', { key: 'race' }), { value: `w${won[0]}` });
  others.forEach((o) => o.close());
});

test('each plugin has its own namespace: kvpeer does not see testkit\'s key', async () => {
  await ask('test:kv-set', { key: 'mine', value: 'testkit' });
  assert.deepEqual(await ask('peer:get', { key: 'mine' }), {});
  await ask('peer:set', { key: 'mine', value: 'peer' });
  assert.deepEqual(await ask('peer:get', { key: 'mine' }), { value: 'peer' });
  assert.deepEqual(await ask('test:kv-get', { key: 'mine' }), { value: 'testkit' });
});

test('kv.keys lists keys by prefix, in order', async () => {
  for (const k of ['list:b', 'list:a', 'list:c', 'other']) await ask('test:kv-set', { key: k, value: 1 });
  assert.deepEqual(await ask('test:kv-keys', { prefix: 'list:' }), ['list:a', 'list:b', 'list:c']);
});

test('a value acked after kv.wait() survives kill -9; so do earlier expiring ones, each until its time', async () => {
  // Written before the wait, so the wait covers them: one expires in a
  // minute, one soon after the restart.
  assert.deepEqual(await ask('test:kv-set', { key: 'minute', value: 'm', ttl: 60000 }), { value: 'm' });
  assert.deepEqual(await ask('test:kv-set', { key: 'soon', value: 's', ttl: 1500 }), { value: 's' });
  assert.deepEqual(await ask('test:kv-durable-set', { key: 'durable', value: { saved: [1, 2, 3] } }),
    { durable: true });
  s.close();
  srv.kill();
  await srv.exited;
  srv = await h.startParley({ dataDir, env });
  await connect();
  assert.deepEqual(await ask('test:kv-get', { key: 'durable' }), { value: { saved: [1, 2, 3] } });
  assert.deepEqual(await ask('test:kv-get', { key: 'counter' }), { value: 200 });
  assert.deepEqual(await ask('test:kv-get', { key: 'minute' }), { value: 'm' });
  // Its expiry came through the restart too: it goes, the minute one stays.
  await untilGone('soon');
  assert.deepEqual(await ask('test:kv-get', { key: 'minute' }), { value: 'm' });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
