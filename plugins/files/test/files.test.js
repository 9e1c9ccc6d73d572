// files: file:progress relayed to the conversation but the sender, at most
// once per interval per transfer, the first and the last always.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('parley-testing');

let srv;
test.before(async () => {
  srv = await parley.start({ plugins: ['files'], config: '{ plugin_config = { files = { interval_ms = 200 } } }' });
});
test.after(() => srv.stop());

test('a burst of 50 updates is thinned to the first and the last; after the interval the next goes again', async () => {
  const a = await srv.client('fa');
  const b = await srv.client('fb');
  await a.join('files');
  await b.join('files');
  const acks = [];
  for (let i = 1; i <= 50; i++) {
    acks.push(await a.request('file:progress', { conversationId: 'files', transferId: 't1', bytes: i * 10, total: 1000 }));
  }
  assert.deepEqual(acks[0], { relayed: true });
  assert.ok(acks.slice(1).every((x) => x.relayed === false), 'a burst was not thinned');
  await parley.sleep(250);
  assert.deepEqual(await a.request('file:progress', { conversationId: 'files', transferId: 't1', bytes: 600, total: 1000 }), { relayed: true });
  assert.deepEqual(await a.request('file:progress', { conversationId: 'files', transferId: 't1', bytes: 1000, total: 1000 }), { relayed: true });
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await b.next('file:progress')).bytes);
  assert.deepEqual(got, [10, 600, 1000]);
  assert.equal(await b.none('file:progress', 200), true);
  assert.equal(await a.none('file:progress', 10), true, 'the sender got its own progress');
});

test('two transfers are thinned separately; bad numbers are refused with 400', async () => {
  const a = await srv.client('fc');
  await a.join('files2');
  assert.equal((await a.request('file:progress', { conversationId: 'files2', transferId: 'x', bytes: 1, total: 9 })).relayed, true);
  assert.equal((await a.request('file:progress', { conversationId: 'files2', transferId: 'y', bytes: 1, total: 9 })).relayed, true);
  for (const bad of [{ bytes: -1, total: 9 }, { bytes: 10, total: 9 }, { bytes: 1.5, total: 9 }, { bytes: '1', total: 9 }]) {
    assert.equal((await a.request('file:progress', { conversationId: 'files2', transferId: 'z', ...bad })).statusCode, 400);
  }
});
