// binarycontent.test.js - a binary attachment where the default scripts
// expect text or JSON: socket.io-client sends a Buffer as a placeholder plus
// a binary frame, and the script gets a parley.binary value (a table). As
// message:send's content (alone, or inside an object; bytes that are UTF-8
// or not) it is a 400 naming the field, counted with the other 400s, with no
// error logged and nothing stored; the sender and a bystander go on.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness');

let srv;
let sender;
let bystander;

test.before(async () => {
  srv = await h.startParley();
  sender = h.sioClient(srv, '/messages', { query: { userId: 'binsender' }, transports: ['websocket'] });
  bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(sender);
  await h.connected(bystander);
  assert.deepEqual(await sender.timeout(2000).emitWithAck('conversation:join', { conversationId: 'bin' }),
    { conversationId: 'bin', success: true });
});
test.after(async () => {
  sender.close();
  bystander.close();
  const st = await srv.stop();
  assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
});

async function metric(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ').pop()) : 0;
}

const REFUSED = { status: 'error', statusCode: 400,
  message: 'content cannot hold a binary attachment: store the file elsewhere and send its URL' };

for (const [what, type, content] of [
  ['a Buffer of JPEG bytes (not UTF-8)', 'image', Buffer.from([0xff, 0xd8, 0xff, 0xe0])],
  ['a Buffer whose bytes are UTF-8', 'document', Buffer.from('plain text')],
  ['an object with a Buffer in it', 'document', { name: 'a.bin', data: Buffer.from([1, 2, 3]) }],
  ['a Buffer three levels down', 'location', { a: { b: [{ c: Buffer.from([0]) }] } }],
]) {
  test(`message:send with content ${what}: 400, counted, not logged as an error, nothing stored`, async () => {
    const errors400 = await metric('parley_errors_total{code="400"}');
    const logged = srv.logs().length;
    const error = h.once(sender, 'error', 2000);
    const ack = await sender.timeout(2000).emitWithAck('message:send',
      { conversationId: 'bin', clientMessageId: `bin-${type}-${what.length}`, type, content });
    assert.deepEqual(ack, REFUSED);
    assert.deepEqual(await error, REFUSED);
    assert.ok(await metric('parley_errors_total{code="400"}') >= errors400 + 1, 'counted');
    assert.doesNotMatch(srv.logs().slice(logged), / error /);
    const sync = await sender.timeout(2000).emitWithAck('messages:sync', { conversationId: 'bin' });
    assert.deepEqual(sync.messages, []);
    assert.equal(await bystander.timeout(2000).emitWithAck('test:echo', 'hi'), 'hi');
  });
}

test('the same sender can still send a text message', async () => {
  const ack = await sender.timeout(2000).emitWithAck('message:send',
    { conversationId: 'bin', clientMessageId: 'bin-text', type: 'text', content: 'after' });
  assert.equal(ack.status, 'sent');
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
