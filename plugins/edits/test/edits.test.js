// edits: the sender edits and deletes within the window; others cannot;
// sync returns the edited text, tombstones, and leaves out what a user
// deleted for themselves.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('parley-testing');

let srv;
test.before(async () => {
  srv = await parley.start({ plugins: ['edits'], config: '{ plugin_config = { edits = { window_ms = 1500 } } }' });
});
test.after(() => srv.stop());
test.after(parley.cleanup); // last: whatever a failed test left running

async function conversation(conv) {
  const a = await srv.client(`${conv}-a`);
  const b = await srv.client(`${conv}-b`);
  await a.join(conv);
  await b.join(conv);
  return { a, b };
}

const syncOf = async (c, conv) => (await c.request('messages:sync', { conversationId: conv })).messages;

test('the sender edits: message:edited to the conversation, sync shows the new text and editedAt; others get 403', async () => {
  const { a, b } = await conversation('ed');
  const { messageId } = await a.request('message:send', { conversationId: 'ed', type: 'text', content: 'helo' });
  const r = await a.request('message:edit', { messageId, content: 'hello' });
  assert.equal(r.success, true);
  const ev = await b.next('message:edited');
  assert.deepEqual({ ...ev, editedAt: 'x' }, { conversationId: 'ed', messageId, content: 'hello', editedAt: 'x' });
  const [m] = await syncOf(b, 'ed');
  assert.deepEqual({ content: m.content, editedAt: m.editedAt }, { content: 'hello', editedAt: r.editedAt });
  assert.equal((await b.request('message:edit', { messageId, content: 'mine now' })).statusCode, 403);
  assert.equal((await a.request('message:edit', { messageId, content: '' })).statusCode, 400);
  assert.equal((await a.request('message:edit', { messageId: 'ffffffffffffffff', content: 'x' })).statusCode, 404);
});

test('an edit whose content is, or holds, a binary attachment (a Buffer) is a 400, not a script failure', async () => {
  const { a } = await conversation('edbin');
  const { messageId } = await a.request('message:send', { conversationId: 'edbin', type: 'document', content: { name: 'a' } });
  for (const content of [Buffer.from([0xff, 0xfe]), Buffer.from('utf-8 bytes'), { name: 'b', file: Buffer.from([1]) }]) {
    const r = await a.request('message:edit', { messageId, content });
    assert.deepEqual(r, { status: 'error', statusCode: 400, message: 'content cannot hold a binary attachment' });
  }
  assert.doesNotMatch(srv.logs(), / error /);
});

test('delete for everyone leaves a tombstone; delete for me hides it from my sync only', async () => {
  const { a, b } = await conversation('del');
  const one = (await a.request('message:send', { conversationId: 'del', type: 'text', content: 'oops' })).messageId;
  const two = (await a.request('message:send', { conversationId: 'del', type: 'text', content: 'keep' })).messageId;
  assert.deepEqual(await a.request('message:delete', { messageId: one, forEveryone: true }), { success: true });
  assert.deepEqual(await b.next('message:deleted'), { conversationId: 'del', messageId: one, forEveryone: true });
  let msgs = await syncOf(b, 'del');
  assert.deepEqual({ content: msgs[0].content, deleted: msgs[0].deleted }, { content: null, deleted: true });
  assert.equal((await a.request('message:edit', { messageId: one, content: 'back' })).statusCode, 410);

  assert.deepEqual(await b.request('message:delete', { messageId: two, forEveryone: false }), { success: true });
  msgs = await syncOf(b, 'del');
  assert.deepEqual(msgs.map((m) => m.messageId), [one]);
  assert.equal((await syncOf(a, 'del')).length, 2, 'hidden for the sender too');
  assert.equal((await b.request('message:delete', { messageId: two, forEveryone: true })).statusCode, 403);
});

test('past the window the sender can no longer edit or delete for everyone', async () => {
  const { a } = await conversation('late');
  const { messageId } = await a.request('message:send', { conversationId: 'late', type: 'text', content: 'old' });
  await parley.sleep(1700);
  assert.equal((await a.request('message:edit', { messageId, content: 'new' })).statusCode, 403);
  assert.equal((await a.request('message:delete', { messageId, forEveryone: true })).statusCode, 403);
  assert.deepEqual(await a.request('message:delete', { messageId }), { success: true });
});
