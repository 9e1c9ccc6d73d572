// authz.test.js - who may hear and touch a members-only conversation
// (issue 15, authorization): a membership change takes the sockets of
// non-members out of the conversation's room (conversation:left with
// reason "removed") and every fan-out reaches members only; no store write
// comes before its check, and a message that is not yours answers exactly
// like one that does not exist; every event is checked (typing:stop too);
// presence:query answers only for users who share a conversation with the
// asker; joining and leaving does not grow the Lua heap.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const parley = require('../harness/parley-testing');

const KEY = 'authz-test-key';
const GRACE = 150;
let srv;

test.before(async () => {
  srv = await parley.start({ plugins: ['testkit', 'reactions', 'edits', 'files'],
    pluginPath: [`${__dirname}/../plugins`],
    env: { PARLEY_API_KEY: KEY },
    config: `{ plugin_config = { chat = { presence_grace_ms = ${GRACE}, sweep_ms = 50 },
      files = { interval_ms = 0 } } }` });
});
test.after(() => srv && srv.stop());

async function api(method, p, body, url = srv.url) {
  const r = await fetch(`${url}${p}`, { method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, body: await r.json() };
}

const members = (conv, list) => api('PUT', `/api/conversations/${conv}/members`, { members: list });
const text = (conversationId, content) => ({ conversationId, type: 'text', content });

// The statuses of message `id` as the history (HTTP API) shows them.
async function statuses(conv, id) {
  const { body } = await api('GET', `/api/conversations/${conv}/messages`);
  const m = body.messages.find((x) => x.messageId === id);
  assert.ok(m, `message ${id} is in ${conv}'s history`);
  return m.statuses || {};
}

// An error ack with the id it names taken out: what a prober can compare.
const shape = (ack, id) => ({ status: ack.status, statusCode: ack.statusCode,
  message: String(ack.message).split(id).join('<id>') });

// A message id that no message has (ids are 16 hex digits, time-derived).
const NO_SUCH_ID = '0000000000000001';

test('a removed sender can no longer edit or delete their message for everyone', async () => {
  assert.equal((await members('authz-edit', ['ed-ann', 'ed-bob'])).status, 200);
  const ann = await srv.client('ed-ann');
  const bob = await srv.client('ed-bob');
  await ann.join('authz-edit');
  await bob.join('authz-edit');
  const sent = await bob.request('message:send', text('authz-edit', 'mine'));
  await ann.next('message:received');
  assert.equal((await members('authz-edit', ['ed-ann'])).status, 200);
  const edit = await bob.request('message:edit', { messageId: sent.messageId, content: 'rewritten' });
  assert.equal(edit.statusCode, 404, JSON.stringify(edit));
  const del = await bob.request('message:delete', { messageId: sent.messageId, forEveryone: true });
  assert.equal(del.statusCode, 404, JSON.stringify(del));
  assert.equal(await ann.none('message:edited', 100), true);
  assert.equal(await ann.none('message:deleted', 50), true);
});

test('message:read / message:delivered of another conversation\'s message write nothing and answer exactly like a message that does not exist', async () => {
  assert.equal((await members('authz-private', ['pv-ann', 'pv-bob'])).status, 200);
  const ann = await srv.client('pv-ann');
  const mallory = await srv.client('pv-mallory');
  const sent = await ann.request('message:send', text('authz-private', 'secret'));
  const id = sent.messageId;
  for (const event of ['message:read', 'message:delivered']) {
    // Named under a conversation mallory may act in (an open one)...
    const theirs = await mallory.request(event, { conversationId: 'mallory-open', messageIds: [id] });
    const none = await mallory.request(event, { conversationId: 'mallory-open', messageIds: [NO_SUCH_ID] });
    assert.equal(theirs.statusCode, 404, JSON.stringify(theirs));
    assert.deepEqual(shape(theirs, id), shape(none, NO_SUCH_ID));
    // ...and under the members-only one itself.
    const inside = await mallory.request(event, { conversationId: 'authz-private', messageIds: [id] });
    const insideNone = await mallory.request(event, { conversationId: 'authz-private', messageIds: [NO_SUCH_ID] });
    assert.deepEqual(shape(inside, id), shape(insideNone, NO_SUCH_ID));
  }
  assert.deepEqual(await statuses('authz-private', id), { 'pv-bob': 'sent' },
    'a refused mark was written to the message\'s statuses');
});

test('a list of ids with one bad id is refused whole: nothing is written for the good ones', async () => {
  const ann = await srv.client('ls-ann');
  const bob = await srv.client('ls-bob');
  await ann.join('authz-list');
  await bob.join('authz-list');
  const sent = await ann.request('message:send', text('authz-list', 'one'));
  await bob.next('message:received');
  const ack = await bob.request('message:read', { conversationId: 'authz-list', messageIds: [sent.messageId, NO_SUCH_ID] });
  assert.equal(ack.statusCode, 404, JSON.stringify(ack));
  assert.deepEqual(await statuses('authz-list', sent.messageId), { 'ls-bob': 'sent' });
  assert.equal(await ann.none('message:status', 100), true);
});

test('edits: a message of a conversation that is not yours answers like one that does not exist', async () => {
  assert.equal((await members('authz-edits-private', ['ep-ann', 'ep-bob'])).status, 200);
  const ann = await srv.client('ep-ann');
  const mallory = await srv.client('ep-mallory');
  const { messageId } = await ann.request('message:send', text('authz-edits-private', 'hands off'));
  for (const [event, extra] of [['message:edit', { content: 'x' }], ['message:delete', { forEveryone: true }],
    ['message:delete', { forEveryone: false }]]) {
    const theirs = await mallory.request(event, { messageId, ...extra });
    const none = await mallory.request(event, { messageId: NO_SUCH_ID, ...extra });
    assert.equal(theirs.statusCode, 404, `${event} ${JSON.stringify(extra)}: ${JSON.stringify(theirs)}`);
    assert.deepEqual(shape(theirs, messageId), shape(none, NO_SUCH_ID), `${event} ${JSON.stringify(extra)}`);
  }
});
