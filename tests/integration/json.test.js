// json.test.js - payloads keep their exact JSON through Lua handlers: empty
// arrays stay arrays and integers beyond 2^53 keep every digit (a plain
// WebSocket client can send them; a JavaScript client cannot).
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const h = require('./harness');

let srv;
test.before(async () => { srv = await h.startParley(); });
test.after(async () => { assert.strictEqual((await srv.stop()).code, 0); });

// The raw text of the ack's data, cut out of the frame without parsing it.
function rawAckData(frame) {
  const m = /^\{"ack":\d+,"data":(.*)\}$/s.exec(frame);
  assert.ok(m, `not an ack frame: ${frame}`);
  return m[1];
}

test('integers beyond 2^53 and empty arrays pass through a Lua handler unchanged', async () => {
  const ws = h.plainClient(srv, 'userId=json1');
  await ws.opened;
  const raws = [];
  ws.removeAllListeners('message');
  ws.on('message', (d) => raws.push(String(d)));
  const data = '[123456789012345678901234567890,-9007199254740993,9007199254740993,' +
    '[],{},[[]],{"a":[]},0.30000000000000004,-0,1e+300,5e-324]';
  ws.send(`{"event":"test:echo","data":${data},"ack":9}`);
  const deadline = Date.now() + 3000;
  let frame;
  while (!(frame = raws.find((r) => r.startsWith('{"ack":9'))) && Date.now() < deadline) await h.sleep(10);
  assert.ok(frame, 'the ack arrived');
  assert.strictEqual(rawAckData(frame), data);
  ws.close();
});

test('a payload with an empty array keeps it as an array in a relayed event', async () => {
  const s = h.sioClient(srv, '/messages', { query: { userId: 'json2' } });
  await h.connected(s);
  const bounced = h.once(s, 'test:bounced');
  await s.emitWithAck('test:bounce', { tags: [], meta: { list: [] }, ids: [1, 2] });
  assert.deepStrictEqual(await bounced, { tags: [], meta: { list: [] }, ids: [1, 2] });
  s.close();
});

test('parley.json.encode writes number keys as their text, and refuses an infinite one', async () => {
  const s = h.sioClient(srv, '/messages', { query: { userId: 'json3' } });
  await h.connected(s);
  const [two, half, neg, inf] = await s.emitWithAck('test:encode-keys');
  assert.deepStrictEqual([two, half, neg], ['{"2":"a"}', '{"1.5":"b"}', '{"-3":"c"}']);
  assert.match(inf, /^error: .*NaN and infinity have no JSON form/);
  s.close();
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
