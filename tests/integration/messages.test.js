// messages.test.js - messages that are never lost (SPEC §3, §4): message:send
// stored and acked, message:received to the conversation and its members
// (each socket once), idempotent retries, per-recipient status that never
// goes back with message:status when a message's status moves, conversation
// reads, sync, membership, and all of it surviving a restart.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const parley = require('../harness/parley-testing');
const h = require('./harness');

const KEY = 'messages-test-key';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-msg-'));
let srv;

async function start() {
  srv = await parley.start({ env: { PARLEY_API_KEY: KEY, PARLEY_DATA_DIR: dataDir } });
}
test.before(start);
test.after(() => srv.stop());

async function api(method, p, body) {
  const r = await fetch(`${srv.url}${p}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const text = (conversationId, content, clientMessageId) =>
  ({ conversationId, clientMessageId, type: 'text', content });

test('message:send in an open conversation: durable ack {messageId, status, timestamp}; message:received with the sender\'s profile to everyone in the room, the sender too', async () => {
  const ann = await srv.client('ann', { auth: { userId: 'ann', name: 'Ann', avatar: 'a.png' } });
  const bob = await srv.client('bob');
  await ann.join('open-1');
  await bob.join('open-1');
  const sentAt = Date.now();
  const ack = await ann.request('message:send', text('open-1', 'hello bob', 'c-1'));
  const ackedAt = Date.now();
  assert.deepEqual(Object.keys(ack).sort(), ['messageId', 'status', 'timestamp']);
  assert.equal(ack.status, 'sent');
  assert.match(ack.messageId, /^[0-9a-f]{16}$/);
  // Stamped by parley (same clock) between the send and its ack.
  const stamped = Date.parse(ack.timestamp);
  assert.ok(stamped >= sentAt - 1 && stamped <= ackedAt, `${ack.timestamp} is not between the send and the ack`);
  const got = await bob.next('message:received');
  assert.deepEqual(got, {
    messageId: ack.messageId, conversationId: 'open-1', senderId: 'ann', clientMessageId: 'c-1',
    type: 'text', content: 'hello bob', timestamp: ack.timestamp, seq: 1, status: 'sent',
    sender: { id: 'ann', name: 'Ann', avatar: 'a.png' },
  });
  assert.equal((await ann.next('message:received')).messageId, ack.messageId);
});

test('a message with quotes, backslashes, control characters and non-ASCII in its fields reaches the room as sync gives it, and a retry answers it', async () => {
  const ann = await srv.client('ann "odd" \\ ✓', { auth: { userId: 'ann "odd" \\ ✓', name: 'Ann "the" \\ ✓\n', avatar: 'a\\b.png' } });
  const conv = 'odd "conv" \\ é ✓\t';
  await ann.join(conv);
  const first = await ann.request('message:send', text(conv, 'first', 'k "1"'));
  await ann.next('message:received');
  const d = {
    conversationId: conv, clientMessageId: 'k "2" \\ \u0001 ✓', type: 'location', replyTo: first.messageId,
    content: { label: 'quote " back \\ nl \n ✓ 😀', at: [52.5, -13.25], none: null, yes: true },
  };
  const ack = await ann.request('message:send', d);
  assert.equal(ack.status, 'sent', JSON.stringify(ack));
  const got = await ann.next('message:received');
  assert.deepEqual(got, {
    messageId: ack.messageId, conversationId: conv, senderId: 'ann "odd" \\ ✓', clientMessageId: d.clientMessageId,
    type: 'location', content: d.content, replyTo: first.messageId, timestamp: ack.timestamp, seq: 2,
    sender: { id: 'ann "odd" \\ ✓', name: 'Ann "the" \\ ✓\n', avatar: 'a\\b.png' }, status: 'sent',
  });
  const synced = (await ann.request('messages:sync', { conversationId: conv })).messages
    .find((m) => m.messageId === ack.messageId);
  assert.deepEqual(synced.statuses, {});
  delete synced.statuses;
  assert.deepEqual(synced, got);
  assert.deepEqual(Object.keys(got), Object.keys(synced), 'the fields in the stored order');
  assert.deepEqual(await ann.request('message:send', d), ack);
});

test('a retry with the same clientMessageId is acked with the original result and creates nothing', async () => {
  const cy = await srv.client('cy');
  const dee = await srv.client('dee');
  await cy.join('open-2');
  await dee.join('open-2');
  const first = await cy.request('message:send', text('open-2', 'once', 'same-id'));
  await dee.next('message:received');
  const again = await cy.request('message:send', text('open-2', 'once (retry)', 'same-id'));
  assert.deepEqual(again, first);
  // The next message dee hears is the one sent after the retry.
  await cy.request('message:send', text('open-2', 'after the retry', 'after-id'));
  assert.equal((await dee.next('message:received')).clientMessageId, 'after-id', 'the retry was announced again');
  const sync = await dee.request('messages:sync', { conversationId: 'open-2' });
  assert.deepEqual(sync.messages.map((m) => m.content), ['once', 'after the retry']);
  // Another sender may use the same clientMessageId: it is per sender.
  const other = await dee.request('message:send', text('open-2', 'mine', 'same-id'));
  assert.notEqual(other.messageId, first.messageId);
});

test('every message type is accepted with its content; bad payloads are refused with 400 naming the field', async () => {
  const s = await srv.client('types');
  await s.join('types');
  for (const [type, content] of [['image', { url: 'https://x/y.png', width: 10 }], ['location', { lat: 1.5, lng: -2 }],
    ['contact', { name: 'Zed', phone: '+1' }], ['sticker', 'sticker-id-9'], ['video', { url: 'v' }],
    ['audio', { url: 'a', seconds: 3 }], ['document', { url: 'd', name: 'x.pdf' }]]) {
    const ack = await s.request('message:send', { conversationId: 'types', type, content });
    assert.equal(ack.status, 'sent', `${type}: ${JSON.stringify(ack)}`);
  }
  for (const [payload, field] of [
    [{ conversationId: 'types', type: 'gif', content: 'x' }, /type must be one of/],
    [{ conversationId: 'types', type: 'text' }, /content is required/],
    [{ conversationId: 'types', type: 'text', content: '' }, /content must be a non-empty string/],
    [{ conversationId: 'types', type: 'text', content: 'x'.repeat(70000) }, /content is longer than 65536/],
    [{ conversationId: 'types', type: 'text', content: 'x', clientMessageId: 7 }, /clientMessageId/],
    [{ type: 'text', content: 'x' }, /conversationId/],
    [{ conversationId: 'types', type: 'text', content: 'x', replyTo: '' }, /replyTo/],
    [{ conversationId: 'types', type: 'text', content: 'x', userId: 'someone-else' }, /userId does not match/],
  ]) {
    const r = await s.request('message:send', payload);
    assert.equal(r.status, 'error');
    assert.equal(r.statusCode, /userId/.test(field.source) ? 403 : 400, JSON.stringify(r));
    assert.match(r.message, field);
  }
  for (const [event, payload, field] of [
    ['message:delivered', { conversationId: 'types', messageIds: 'x' }, /messageIds/],
    ['message:read', { conversationId: 'types', messageIds: [] }, /messageIds/],
    ['messages:sync', { conversationId: 'types', limit: 0 }, /limit/],
    ['presence:query', { userIds: [1] }, /userIds\[1\]/],
    ['conversation:read', { conversationId: 'types', upTo: 5 }, /upTo/],
  ]) {
    const r = await s.request(event, payload);
    assert.equal(r.statusCode, 400, `${event}: ${JSON.stringify(r)}`);
    assert.match(r.message, field);
  }
});

test('registered members: a non-member cannot join, send or sync (403); members get message:received in their user room without joining, each socket once', async () => {
  assert.equal((await api('PUT', '/api/conversations/team/members', { members: ['m1', 'm2', 'm3'] })).status, 200);
  const outsider = await srv.client('outsider');
  assert.equal((await outsider.join('team')).statusCode, 403);
  assert.equal((await outsider.request('message:send', text('team', 'hi', 'x'))).statusCode, 403);
  assert.equal((await outsider.request('messages:sync', { conversationId: 'team' })).statusCode, 403);

  const m1 = await srv.client('m1');
  const m2a = await srv.client('m2');
  const m2b = await srv.client('m2'); // a second device of m2, in the room as well
  await m1.join('team');
  await m2b.join('team');
  const ack = await m1.request('message:send', text('team', 'to the team', 'team-1'));
  for (const c of [m2a, m2b]) assert.equal((await c.next('message:received')).messageId, ack.messageId);
  // What m2b hears next is the next message, not the first one again.
  const next = await m1.request('message:send', text('team', 'again', 'team-2'));
  assert.equal((await m2b.next('message:received')).messageId, next.messageId,
    'a socket in both the room and the user room got it twice');
  // Anything sent to the outsider before its own answer is queued by then.
  await outsider.request('presence:query', { userIds: ['m1'] });
  assert.equal(await outsider.none('message:received', 0), true, 'an outsider heard the team');
});

test('status per recipient: delivered then read; a late delivered changes nothing; message:status goes to the room and to the sender', async () => {
  await api('PUT', '/api/conversations/pair/members', { members: ['p1', 'p2'] });
  const p1 = await srv.client('p1');
  const p2 = await srv.client('p2');
  await p2.join('pair');
  const { messageId } = await p1.request('message:send', text('pair', 'ping', 'pair-1'));
  await p2.next('message:received');

  assert.deepEqual(await p2.request('message:delivered', { conversationId: 'pair', messageIds: [messageId] }),
    { success: true, updated: 1 });
  const st1 = await p1.next('message:status'); // p1 is not in the room: its user room
  assert.deepEqual({ ...st1, updatedAt: 'x' },
    { messageId, conversationId: 'pair', status: 'delivered', updatedAt: 'x', userId: 'p2' });
  assert.equal((await p2.next('message:status')).status, 'delivered');

  await p2.request('message:read', { conversationId: 'pair', messageIds: [messageId] });
  assert.equal((await p1.next('message:status')).status, 'read');
  // Accepted (`updated` counts the ids taken, moved or not: unlike
  // conversation:read's, which counts the moved), and it moves nothing.
  assert.deepEqual(await p2.request('message:delivered', { conversationId: 'pair', messageIds: [messageId] }),
    { success: true, updated: 1 });
  // p2's next message reaches p1 after anything the late delivered caused.
  assert.equal((await p1.next('message:received')).messageId, messageId); // p1's own, in its user room
  await p2.request('message:send', text('pair', 'pong', 'pair-2'));
  assert.equal(await p1.noneBefore('message:status', 'message:received'), true, 'status went backwards');
  const { messages } = await p1.request('messages:sync', { conversationId: 'pair' });
  assert.equal(messages[0].status, 'read');
  assert.deepEqual(messages[0].statuses, { p2: 'read' });
  // Not a recipient of one's own message; unknown ids are 404.
  assert.equal((await p1.request('message:read', { conversationId: 'pair', messageIds: ['0000000000000000'] })).statusCode, 404);
});

test('a group message\'s status is the least advanced over its recipients; each recipient\'s own is kept', async () => {
  await api('PUT', '/api/conversations/group/members', { members: ['g1', 'g2', 'g3'] });
  const g1 = await srv.client('g1');
  const g2 = await srv.client('g2');
  const g3 = await srv.client('g3');
  const { messageId } = await g1.request('message:send', text('group', 'all', 'group-1'));
  await g2.request('message:read', { conversationId: 'group', messageIds: [messageId] });
  // The first status g1 hears is g3's delivered: g2's read alone moved nothing.
  await g3.request('message:delivered', { conversationId: 'group', messageIds: [messageId] });
  assert.equal((await g1.next('message:status')).status, 'delivered', 'moved while g3 had nothing');
  await g3.request('message:read', { conversationId: 'group', messageIds: [messageId] });
  assert.equal((await g1.next('message:status')).status, 'read');
  const { messages } = await g2.request('messages:sync', { conversationId: 'group' });
  assert.deepEqual(messages[0].statuses, { g2: 'read', g3: 'read' });
});


test('open conversation: a newcomer marking a message everyone has read does not take it back from read', async () => {
  const oa = await srv.client('oa');
  const ob = await srv.client('ob');
  await oa.join('open-late');
  await ob.join('open-late');
  const { messageId } = await oa.request('message:send', text('open-late', 'before oc came', 'late-1'));
  await ob.request('message:read', { conversationId: 'open-late', messageIds: [messageId] });
  assert.equal((await oa.next('message:status')).status, 'read');

  const oc = await srv.client('oc');
  await oc.join('open-late');
  assert.deepEqual(await oc.request('message:delivered', { conversationId: 'open-late', messageIds: [messageId] }),
    { success: true, updated: 1 });
  // oc's next message reaches oa after anything oc's delivered caused.
  assert.equal((await oa.next('message:received')).messageId, messageId); // oa's own
  await oc.request('message:send', text('open-late', 'hello', 'late-2'));
  assert.equal(await oa.noneBefore('message:status', 'message:received'), true, 'a newcomer\'s delivered moved the status');
  let { messages } = await oa.request('messages:sync', { conversationId: 'open-late' });
  assert.equal(messages[0].status, 'read');
  assert.deepEqual(messages[0].statuses, { ob: 'read' });

  // Reading it too makes the newcomer a recipient, at read.
  await oc.request('message:read', { conversationId: 'open-late', messageIds: [messageId] });
  ({ messages } = await oa.request('messages:sync', { conversationId: 'open-late' }));
  assert.equal(messages[0].status, 'read');
  assert.deepEqual(messages[0].statuses, { ob: 'read', oc: 'read' });
});
test('conversation:read by a user who was never a recipient copies no message: the store grows by far less than the history read, and the reader counts as a recipient at read', h.lmdbOnly('measures the growth of LMDB\'s data.mdb'), async () => {
  const file = path.join(dataDir, 'data.mdb');
  const writer = await srv.client('hist-writer');
  await writer.join('history');
  const big = 'h'.repeat(60000);
  const ids = [];
  for (let i = 0; i < 100; i += 10) {
    const acks = await Promise.all(Array.from({ length: 10 }, (_, k) =>
      writer.request('message:send', text('history', `${i + k} ${big}`, `hist-${i + k}`))));
    ids.push(...acks.map((a) => a.messageId));
  }
  const before = fs.statSync(file).size;
  const reader = await srv.client('hist-reader');
  assert.deepEqual(await reader.request('conversation:read', { conversationId: 'history' }, 10000),
    { success: true, updated: 100 });
  const grown = fs.statSync(file).size - before;
  // Each record is 60 KB: a copy of each, with the reader added, was 6 MB.
  assert.ok(grown < 100 * 60000 / 10, `the store grew by ${grown} bytes for one reader of 6 MB of history`);
  // Nobody else received them: the reader's read moves each to read.
  const moved = [];
  for (let i = 0; i < 100; i++) moved.push((await writer.next('message:status')).messageId);
  assert.deepEqual(moved, ids);
  const { messages } = await writer.request('messages:sync', { conversationId: 'history', limit: 3 });
  assert.deepEqual(messages.map((m) => [m.status, m.statuses]),
    [0, 1, 2].map(() => ['read', { 'hist-reader': 'read' }]));
  const rec = await api('GET', `/api/conversations/history/messages?limit=1`);
  assert.deepEqual(rec.body.messages[0].statuses, { 'hist-reader': 'read' });
});

test('open conversation: a newcomer who became a recipient at delivered holds the message at delivered until it reads, across a restart', async () => {
  const a = await srv.client('nd-a');
  const b = await srv.client('nd-b');
  await a.join('open-held');
  await b.join('open-held');
  const { messageId } = await a.request('message:send', text('open-held', 'hold on', 'held-1'));
  const c = await srv.client('nd-c');
  await c.request('message:delivered', { conversationId: 'open-held', messageIds: [messageId] });
  assert.equal(await a.none('message:status', 300), true, 'moved while nd-b had nothing');
  await b.request('message:read', { conversationId: 'open-held', messageIds: [messageId] });
  assert.equal((await a.next('message:status')).status, 'delivered');
  let { messages } = await a.request('messages:sync', { conversationId: 'open-held' });
  assert.equal(messages[0].status, 'delivered');
  assert.deepEqual(messages[0].statuses, { 'nd-b': 'read', 'nd-c': 'delivered' });
  await srv.stop();
  await start();
  const c2 = await srv.client('nd-c');
  const a2 = await srv.client('nd-a');
  ({ messages } = await a2.request('messages:sync', { conversationId: 'open-held' }));
  assert.equal(messages[0].status, 'delivered');
  assert.deepEqual(await c2.request('conversation:read', { conversationId: 'open-held' }), { success: true, updated: 1 });
  assert.equal((await a2.next('message:status')).status, 'read');
  ({ messages } = await a2.request('messages:sync', { conversationId: 'open-held' }));
  assert.deepEqual([messages[0].status, messages[0].statuses], ['read', { 'nd-b': 'read', 'nd-c': 'read' }]);
});

test('conversation:read marks everything (or up to a message) read, with a message:status for each message that moved', async () => {
  await api('PUT', '/api/conversations/reads/members', { members: ['r1', 'r2'] });
  const r1 = await srv.client('r1');
  const r2 = await srv.client('r2');
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await r1.request('message:send', text('reads', `m${i}`, `reads-${i}`))).messageId);
  assert.deepEqual(await r2.request('conversation:read', { conversationId: 'reads', upTo: ids[2] }),
    { success: true, updated: 3 });
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await r1.next('message:status')).messageId);
  assert.deepEqual(got, ids.slice(0, 3));
  // The rest: the next statuses r1 hears are those of the last two, once each.
  assert.deepEqual(await r2.request('conversation:read', { conversationId: 'reads' }), { success: true, updated: 2 });
  for (let i = 3; i < 5; i++) assert.equal((await r1.next('message:status')).messageId, ids[i]);
  assert.deepEqual(await r2.request('conversation:read', { conversationId: 'reads' }), { success: true, updated: 0 });
  await r2.request('message:send', text('reads', 'marker', 'reads-marker'));
  assert.equal(await r1.noneBefore('message:status', 'message:received'), true, 'a status after everything was read');
});

test('messages:sync returns the messages after a point, oldest first, a page at a time, with hasMore; an unknown point is 404', async () => {
  const s = await srv.client('syncer');
  await s.join('sync-conv');
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push((await s.request('message:send', text('sync-conv', `n${i}`))).messageId);
  const all = await s.request('messages:sync', { conversationId: 'sync-conv' });
  assert.deepEqual(all.messages.map((m) => m.content), ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
  assert.deepEqual(all.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
  const page = await s.request('messages:sync', { conversationId: 'sync-conv', after: ids[1], limit: 3 });
  assert.deepEqual(page.messages.map((m) => m.content), ['n2', 'n3', 'n4']);
  assert.equal(page.hasMore, true);
  const rest = await s.request('messages:sync', { conversationId: 'sync-conv', after: ids[4], limit: 3 });
  assert.equal(rest.hasMore, false);
  assert.equal(rest.messages.length, 2);
  assert.equal((await s.request('messages:sync', { conversationId: 'sync-conv', after: 'ffffffffffffffff' })).statusCode, 404);
  assert.deepEqual(await s.request('messages:sync', { conversationId: 'empty-conv' }), { messages: [], hasMore: false });
});

test('the HTTP API creates messages that reach sockets like socket-sent ones, updates status with message:status, reads, lists', async () => {
  await api('PUT', '/api/users/h1', { name: 'Hana', phoneNumber: '+100', avatar: 'h.png' });
  const h2 = await srv.client('h2');
  await h2.join('http-conv');
  const created = await api('POST', '/api/conversations/http-conv/messages',
    { senderId: 'h1', clientMessageId: 'api-1', type: 'text', content: 'from the backend' });
  assert.equal(created.status, 201);
  const got = await h2.next('message:received');
  assert.equal(got.messageId, created.body.messageId);
  assert.deepEqual(got.sender, { id: 'h1', name: 'Hana', phoneNumber: '+100', avatar: 'h.png' });
  const retry = await api('POST', '/api/conversations/http-conv/messages',
    { senderId: 'h1', clientMessageId: 'api-1', type: 'text', content: 'from the backend' });
  assert.equal(retry.status, 200);
  assert.equal(retry.body.messageId, created.body.messageId);

  const patched = await api('PATCH', `/api/messages/${created.body.messageId}/status`, { userId: 'h2', status: 'read' });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal(patched.body.status, 'read');
  assert.equal((await h2.next('message:status')).status, 'read');

  const list = await api('GET', '/api/conversations/http-conv/messages?limit=10');
  assert.equal(list.body.messages.length, 1);
  assert.equal(list.body.messages[0].statuses.h2, 'read');
  assert.equal((await api('GET', '/api/conversations/team/members')).body.members.length, 3);
  assert.equal((await api('POST', '/api/conversations/http-conv/read', { userId: 'h2' })).body.success, true);

  // Errors: 400 (bad body), 404 (unknown message), 415, 401.
  assert.equal((await api('POST', '/api/conversations/http-conv/messages', { type: 'text', content: 'x' })).status, 400);
  assert.equal((await api('PATCH', '/api/messages/0123456789abcdef/status', { userId: 'h2', status: 'read' })).status, 404);
  assert.equal((await api('PATCH', `/api/messages/${created.body.messageId}/status`, { userId: 'h2', status: 'gone' })).status, 400);
  const noKey = await fetch(`${srv.url}/api/users/online`);
  assert.equal(noKey.status, 401);
  const form = await fetch(`${srv.url}/api/users/h1`, { method: 'PUT',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'text/plain' }, body: 'name=x' });
  assert.equal(form.status, 415);
});

test('everything survives a restart: messages, statuses, membership, idempotency keys, profiles', async () => {
  const before = (await api('GET', '/api/conversations/pair/messages')).body;
  await srv.stop();
  await start();
  const after = (await api('GET', '/api/conversations/pair/messages')).body;
  assert.deepEqual(after, before);
  assert.equal((await api('GET', '/api/conversations/team/members')).body.members.length, 3);
  const p1 = await srv.client('p1');
  const again = await p1.request('message:send', text('pair', 'ping', 'pair-1'));
  assert.equal(again.messageId, before.messages[0].messageId, 'the idempotency key was lost');
  const next = await p1.request('message:send', text('pair', 'after restart', 'pair-2'));
  const sync = await p1.request('messages:sync', { conversationId: 'pair' });
  // 1 and 2 before the restart (p1's ping, p2's pong), 3 after.
  assert.deepEqual(sync.messages.map((m) => m.seq), [1, 2, 3]);
  assert.equal(sync.messages[2].messageId, next.messageId);
});

test('a message id named twice in one mark counts its marker once: the message still reaches read when everyone has read it', async () => {
  const sid = await srv.client('dup-s');
  const rid = await srv.client('dup-r');
  await sid.join('open-dup');
  await rid.join('open-dup');
  const { messageId } = await sid.request('message:send', text('open-dup', 'twice', 'dup-1'));
  assert.deepEqual(await rid.request('message:delivered', { conversationId: 'open-dup', messageIds: [messageId] }), { success: true, updated: 1 });
  // A newcomer who marks it at the message's status becomes a recipient:
  // named twice, it must still count once.
  const late = await srv.client('dup-late');
  await late.join('open-dup');
  assert.deepEqual(await late.request('message:delivered', { conversationId: 'open-dup', messageIds: [messageId, messageId] }), { success: true, updated: 2 });
  assert.deepEqual(await rid.request('message:read', { conversationId: 'open-dup', messageIds: [messageId] }), { success: true, updated: 1 });
  assert.deepEqual(await late.request('message:read', { conversationId: 'open-dup', messageIds: [messageId] }), { success: true, updated: 1 });
  const { messages } = await sid.request('messages:sync', { conversationId: 'open-dup' });
  const m = messages.find((x) => x.messageId === messageId);
  assert.deepEqual({ status: m.status, statuses: m.statuses },
    { status: 'read', statuses: { 'dup-late': 'read', 'dup-r': 'read' } });
});
// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
