// files: file:progress relayed to the conversation but the sender, at most
// once per interval per transfer, the first and the last always.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('parley-testing');

// The burst below is sent at once and handled within a few ms: a second
// of interval leaves it a wide margin on a busy machine.
const INTERVAL = 1000;
let srv;
test.before(async () => {
  srv = await parley.start({ plugins: ['files'], config: `{ plugin_config = { files = { interval_ms = ${INTERVAL} } } }` });
});
test.after(() => srv.stop());
test.after(parley.cleanup); // last: whatever a failed test left running

test('a burst of 50 updates is thinned to the first and the last; after the interval the next goes again', async () => {
  const a = await srv.client('fa');
  const b = await srv.client('fb');
  await a.join('files');
  await b.join('files');
  const first = Date.now();
  const acks = await Promise.all(Array.from({ length: 50 }, (_, k) =>
    a.request('file:progress', { conversationId: 'files', transferId: 't1', bytes: (k + 1) * 10, total: 1000 })));
  assert.deepEqual(acks[0], { relayed: true });
  assert.ok(acks.slice(1).every((x) => x.relayed === false), `a burst was not thinned: ${JSON.stringify(acks)}`);
  // Once the interval has passed, the next goes again (never sooner).
  let bytes = 500;
  for (;;) {
    bytes += 1;
    const r = await a.request('file:progress', { conversationId: 'files', transferId: 't1', bytes, total: 1000 });
    if (r.relayed) break;
    assert.ok(Date.now() - first < 10000, 'nothing relayed again within 10 s');
    await parley.sleep(50);
  }
  assert.ok(Date.now() - first >= INTERVAL, `relayed again ${Date.now() - first} ms after the first, inside the interval`);
  assert.deepEqual(await a.request('file:progress', { conversationId: 'files', transferId: 't1', bytes: 1000, total: 1000 }), { relayed: true });
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await b.next('file:progress')).bytes);
  assert.deepEqual(got, [10, bytes, 1000]);
  // The sender heard none of it: its own answer to a later request comes
  // after anything sent to it before.
  await a.request('file:progress', { conversationId: 'files', transferId: 't2', bytes: 1, total: 9 });
  assert.equal(await a.none('file:progress', 0), true, 'the sender got its own progress');
  assert.equal((await b.next('file:progress')).transferId, 't2', 'b heard more of t1');
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
