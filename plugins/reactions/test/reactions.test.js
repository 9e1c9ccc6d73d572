// reactions: one per user per message, replaced by a new one, removed,
// broadcast as message:reaction, and returned by messages:sync.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('parley-testing');

let srv;
test.before(async () => { srv = await parley.start({ plugins: ['reactions'] }); });
test.after(() => srv.stop());
test.after(parley.cleanup); // last: whatever a failed test left running

async function pairWithMessage(conv) {
  const a = await srv.client(`${conv}-a`);
  const b = await srv.client(`${conv}-b`);
  await a.join(conv);
  await b.join(conv);
  const { messageId } = await a.request('message:send', { conversationId: conv, type: 'text', content: 'react to me' });
  await b.next('message:received');
  return { a, b, messageId };
}

test('a reaction is broadcast to the conversation and stored with the message; a new emoji replaces it; remove takes it away', async () => {
  const { a, b, messageId } = await pairWithMessage('rx');
  assert.deepEqual(await b.request('reaction:add', { conversationId: 'rx', messageId, emoji: '👍' }),
    { success: true, changed: true });
  assert.deepEqual(await a.next('message:reaction'),
    { conversationId: 'rx', messageId, userId: 'rx-b', emoji: '👍', action: 'add' });
  await b.request('reaction:add', { conversationId: 'rx', messageId, emoji: '🎉' });
  assert.equal((await a.next('message:reaction')).emoji, '🎉');
  await a.request('reaction:add', { conversationId: 'rx', messageId, emoji: '❤️' });
  assert.equal((await a.next('message:reaction')).userId, 'rx-a', 'the reactor is in the room too');
  let [m] = (await a.request('messages:sync', { conversationId: 'rx' })).messages;
  assert.deepEqual(m.reactions, { 'rx-b': '🎉', 'rx-a': '❤️' });

  await b.request('reaction:remove', { conversationId: 'rx', messageId });
  assert.deepEqual(await a.next('message:reaction'),
    { conversationId: 'rx', messageId, userId: 'rx-b', emoji: null, action: 'remove' });
  [m] = (await a.request('messages:sync', { conversationId: 'rx' })).messages;
  assert.deepEqual(m.reactions, { 'rx-a': '❤️' });
  // The same emoji again changes nothing and tells nobody.
  assert.deepEqual(await a.request('reaction:add', { conversationId: 'rx', messageId, emoji: '❤️' }),
    { success: true, changed: false });
});

test('bad reactions: no emoji 400, unknown message 404, a message of another conversation 404', async () => {
  const { b, messageId } = await pairWithMessage('rx2');
  assert.equal((await b.request('reaction:add', { conversationId: 'rx2', messageId })).statusCode, 400);
  assert.equal((await b.request('reaction:add', { conversationId: 'rx2', messageId: 'ffffffffffffffff', emoji: 'x' })).statusCode, 404);
  assert.equal((await b.request('reaction:add', { conversationId: 'elsewhere', messageId, emoji: 'x' })).statusCode, 404);
});

test('reactions are stored: they come back with messages:sync after a restart on the same data directory', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-reactions-'));
  const first = await parley.start({ plugins: ['reactions'], env: { PARLEY_DATA_DIR: dataDir } });
  let messageId;
  try {
    const a = await first.client('keep-a');
    const b = await first.client('keep-b');
    await a.join('keep');
    await b.join('keep');
    ({ messageId } = await a.request('message:send', { conversationId: 'keep', type: 'text', content: 'stay' }));
    assert.deepEqual(await b.request('reaction:add', { conversationId: 'keep', messageId, emoji: '🔥' }),
      { success: true, changed: true });
  } finally {
    await first.stop();
  }
  const second = await parley.start({ plugins: ['reactions'], env: { PARLEY_DATA_DIR: dataDir } });
  try {
    const a = await second.client('keep-a');
    const [m] = (await a.request('messages:sync', { conversationId: 'keep' })).messages;
    assert.equal(m.messageId, messageId);
    assert.deepEqual(m.reactions, { 'keep-b': '🔥' });
  } finally {
    await second.stop();
  }
});
