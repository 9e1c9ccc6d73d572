// inbox.test.js - the chat list (issue 21): conversations:list and GET
// /api/users/{id}/conversations answer a user's conversations, latest
// activity first, each with its last message (sender, type, preview,
// timestamp) and the user's unread count, kept by the store as messages
// and reads arrive; conversation:updated reaches the sockets that asked for
// the list (a subscription, until the socket goes or lists with subscribe:
// false) when one of them moves, and no other socket. Open conversations
// the user wrote, received or read in, and registered ones; paging;
// refusals; and all of it after a kill -9.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');
const parley = require('../harness/parley-testing');

const KEY = 'inbox-test-key';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-inbox-'));
let srv;

async function start() {
  srv = await parley.start({ env: { PARLEY_API_KEY: KEY, PARLEY_DATA_DIR: dataDir } });
}
test.before(start);
test.after(async () => {
  await srv.stop();
  parley.cleanup();
});

async function api(method, p, body) {
  const r = await fetch(`${srv.url}${p}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const text = (conversationId, content) => ({ conversationId, type: 'text', content });
const ids = (page) => page.conversations.map((c) => c.conversationId);
const byId = (page, id) => page.conversations.find((c) => c.conversationId === id);

test('an open conversation: the last message and the recipient\'s unread count, kept as messages arrive; conversation:updated each time', async () => {
  const ann = await srv.client('ann', { auth: { userId: 'ann', name: 'Ann' } });
  const bob = await srv.client('bob');
  const zed = await srv.client('zed');
  // Each shows its list: from then on its socket follows it.
  for (const c of [ann, bob, zed]) assert.deepEqual(ids(await c.request('conversations:list', {})), []);
  await ann.join('o1');
  await bob.join('o1');
  for (let i = 1; i <= 3; i++) {
    const { messageId } = await ann.request('message:send', text('o1', `hello ${i}`));
    const upd = await bob.next('conversation:updated');
    assert.equal(upd.conversationId, 'o1');
    assert.equal(upd.unreadCount, i);
    assert.equal(upd.lastMessage.messageId, messageId);
    const mine = await ann.next('conversation:updated');
    assert.equal(mine.unreadCount, 0, 'the sender has nothing unread of its own');
  }
  // Nobody else heard of it: zed's first conversation:updated is that of
  // its own conversation, written after those sends.
  await zed.join('z-own');
  await zed.request('message:send', text('z-own', 'mine'));
  assert.equal((await zed.next('conversation:updated')).conversationId, 'z-own');
  const page = await bob.request('conversations:list', {});
  assert.deepEqual(ids(page), ['o1']);
  assert.equal(page.hasMore, false);
  const item = page.conversations[0];
  assert.equal(item.unreadCount, 3);
  assert.equal(item.lastMessage.senderId, 'ann');
  assert.deepEqual(item.lastMessage.sender, { id: 'ann', name: 'Ann' });
  assert.equal(item.lastMessage.type, 'text');
  assert.equal(item.lastMessage.preview, 'hello 3');
  assert.equal(item.lastMessage.seq, 3);
  assert.equal(item.updatedAt, item.lastMessage.timestamp);
  assert.equal((await ann.request('conversations:list', {})).conversations[0].unreadCount, 0);
});

test('latest activity first: a new message moves its conversation to the top; pages follow with before, hasMore', async () => {
  const cy = await srv.client('cy');
  const dot = await srv.client('dot');
  for (const c of ['a1', 'a2', 'a3', 'a4']) {
    await cy.join(c);
    await dot.join(c);
    await cy.request('message:send', text(c, `in ${c}`));
  }
  await dot.request('message:send', text('a2', 'back to a2'));
  const all = await cy.request('conversations:list', {});
  assert.deepEqual(ids(all), ['a2', 'a4', 'a3', 'a1']);
  assert.equal(byId(all, 'a2').lastMessage.senderId, 'dot');
  assert.equal(byId(all, 'a2').unreadCount, 1);
  const p1 = await cy.request('conversations:list', { limit: 2 });
  assert.deepEqual(ids(p1), ['a2', 'a4']);
  assert.equal(p1.hasMore, true);
  const p2 = await cy.request('conversations:list', { limit: 2, before: 'a4' });
  assert.deepEqual(ids(p2), ['a3', 'a1']);
  assert.equal(p2.hasMore, false);
});

test('reads bring the unread count down (each message once), and conversation:updated reaches every tab of the reader that shows the list', async () => {
  const eve = await srv.client('eve');
  const fay = await srv.client('fay');
  const fay2 = await srv.client('fay');
  await fay.request('conversations:list', {});
  await fay2.request('conversations:list', {});
  await eve.join('r1');
  await fay.join('r1');
  const sent = [];
  for (let i = 0; i < 4; i++) sent.push((await eve.request('message:send', text('r1', `m${i}`))).messageId);
  for (let i = 0; i < 4; i++) { await fay.next('conversation:updated'); await fay2.next('conversation:updated'); }
  // The same id twice counts once.
  await fay.request('message:read', { conversationId: 'r1', messageIds: [sent[0], sent[0]] });
  assert.equal((await fay.next('conversation:updated')).unreadCount, 3);
  assert.equal((await fay2.next('conversation:updated')).unreadCount, 3);
  // Delivered is not read.
  await fay.request('message:delivered', { conversationId: 'r1', messageIds: [sent[1]] });
  assert.equal(byId(await fay.request('conversations:list', {}), 'r1').unreadCount, 3);
  // A read again of a read message changes nothing.
  await fay.request('message:read', { conversationId: 'r1', messageIds: [sent[0]] });
  assert.equal((await fay.next('conversation:updated')).unreadCount, 3);
  assert.equal((await fay2.next('conversation:updated')).unreadCount, 3);
  await fay2.request('conversation:read', { conversationId: 'r1' });
  assert.equal((await fay.next('conversation:updated')).unreadCount, 0);
  assert.equal((await fay2.next('conversation:updated')).unreadCount, 0);
  assert.equal(byId(await fay.request('conversations:list', {}), 'r1').unreadCount, 0);
  // The sender's count never moved.
  assert.equal(byId(await eve.request('conversations:list', {}), 'r1').unreadCount, 0);
});

test('an open conversation enters the inbox of one who only reads in it, and of one who only wrote in it (even away from its room)', async () => {
  const gus = await srv.client('gus');
  await gus.request('conversations:list', {});
  await gus.join('quiet');
  await gus.request('message:send', text('quiet', 'anyone?'));
  assert.equal((await gus.next('conversation:updated')).lastMessage.preview, 'anyone?');
  await gus.request('conversation:leave', { conversationId: 'quiet' });
  const hal = await srv.client('hal');
  assert.deepEqual(ids(await hal.request('conversations:list', {})), []);
  await hal.request('conversation:read', { conversationId: 'quiet' });
  const page = await hal.request('conversations:list', {});
  assert.deepEqual(ids(page), ['quiet']);
  assert.equal(page.conversations[0].unreadCount, 0);
  assert.equal(page.conversations[0].lastMessage.preview, 'anyone?');
  // hal writes: gus, who left the room, still sees the conversation move.
  await hal.join('quiet');
  await hal.request('message:send', text('quiet', 'me'));
  const upd = await gus.next('conversation:updated');
  assert.equal(upd.lastMessage.preview, 'me');
  assert.equal(upd.unreadCount, 0, 'gus was not in the room: not a recipient, nothing unread');
});

test('a registered conversation is in each member\'s inbox from the start (no message yet: lastMessage null), never in anyone else\'s, and leaves a removed member\'s', async () => {
  assert.equal((await api('PUT', '/api/conversations/team/members', { members: ['ivy', 'jon', 'kim'] })).status, 200);
  const jon = await api('GET', '/api/users/jon/conversations');
  assert.equal(jon.status, 200);
  assert.deepEqual(ids(jon.body), ['team']);
  assert.equal(jon.body.conversations[0].lastMessage, null);
  assert.equal(jon.body.conversations[0].unreadCount, 0);
  const ivy = await srv.client('ivy');
  await ivy.request('message:send', { conversationId: 'team', type: 'image', content: { url: 'https://x/y.png', caption: 'the board' } });
  const kim = (await api('GET', '/api/users/kim/conversations')).body.conversations[0];
  assert.equal(kim.unreadCount, 1);
  assert.equal(kim.lastMessage.type, 'image');
  assert.equal(kim.lastMessage.preview, 'the board');
  // An outsider's open-room tricks do not put it in their inbox.
  const lou = await srv.client('lou');
  assert.equal((await lou.request('conversation:read', { conversationId: 'team' })).statusCode, 403);
  assert.deepEqual(ids(await lou.request('conversations:list', {})), []);
  // kim is removed: gone from kim's list, still in jon's.
  assert.equal((await api('PUT', '/api/conversations/team/members', { members: ['ivy', 'jon'] })).status, 200);
  assert.deepEqual(ids((await api('GET', '/api/users/kim/conversations')).body), []);
  assert.deepEqual(ids((await api('GET', '/api/users/jon/conversations')).body), ['team']);
});

test('conversation:updated only to the sockets that asked for the list: both tabs that listed, never one that did not', async () => {
  const pia = await srv.client('pia');
  const q1 = await srv.client('quin');
  const q2 = await srv.client('quin');
  const q3 = await srv.client('quin'); // connected all along, lists late
  await pia.join('sub');
  await q3.join('sub'); // quin is a recipient: its unread count moves
  await q1.request('conversations:list', {});
  await q2.request('conversations:list', { limit: 5 });
  const send = async (n) => (await pia.request('message:send', text('sub', n))).messageId;
  for (const n of ['m1', 'm2']) {
    const id = await send(n);
    for (const q of [q1, q2]) {
      const upd = await q.next('conversation:updated');
      assert.equal(upd.lastMessage.messageId, id, `${n}: both tabs that listed hear of it`);
    }
  }
  // q3 lists now, and a plain WebSocket of quin too: the first
  // conversation:updated each gets is m3's (q3 had none of m1 and m2).
  await q3.request('conversations:list', {});
  const plain = await srv.plain('quin');
  await plain.request('conversations:list', {});
  await send('m3');
  for (const [name, q] of [['q1', q1], ['q2', q2], ['q3', q3]]) {
    const upd = await q.next('conversation:updated');
    assert.equal(upd.lastMessage.preview, 'm3', `${name}'s next conversation:updated`);
    assert.equal(upd.unreadCount, 3);
  }
  const f = await plain.next((x) => x.event === 'conversation:updated');
  assert.equal(f.data.lastMessage.preview, 'm3');
  // pia, the sender, never listed: nothing of its list came before m3's
  // message:received, the last thing it was sent.
  for (let i = 0; i < 2; i++) await pia.next('message:received');
  assert.equal(await pia.noneBefore('conversation:updated', 'message:received'), true);
});

test('subscribe: false answers the page and stops the socket\'s conversation:updated; listing again starts them again', async () => {
  const ria = await srv.client('ria');
  const s1 = await srv.client('sam');
  const s2 = await srv.client('sam');
  await ria.join('unsub');
  await s1.join('unsub');
  await s1.request('conversations:list', {});
  await s2.request('conversations:list', {});
  const send = (n) => ria.request('message:send', text('unsub', n));
  await send('n1');
  for (const s of [s1, s2]) assert.equal((await s.next('conversation:updated')).lastMessage.preview, 'n1');
  const page = await s2.request('conversations:list', { subscribe: false });
  assert.deepEqual(ids(page), ['unsub']);
  assert.equal(page.conversations[0].unreadCount, 1);
  await send('n2');
  assert.equal((await s1.next('conversation:updated')).lastMessage.preview, 'n2');
  // s2 lists again: its next conversation:updated is n3's, none of n2.
  await s2.request('conversations:list', {});
  await send('n3');
  for (const s of [s1, s2]) assert.equal((await s.next('conversation:updated')).lastMessage.preview, 'n3');
});

test('a list that cannot subscribe (the socket is in PARLEY_MAX_ROOMS rooms) is refused with 429; with subscribe: false it answers', async () => {
  const small = await parley.start({ env: { PARLEY_MAX_ROOMS: '3' } });
  try {
    const rae = await small.client('rae');
    let joined = 0;
    for (const c of ['x1', 'x2', 'x3', 'x4']) {
      if ((await rae.join(c)).success) joined++;
    }
    assert.ok(joined < 4, 'the socket is full of rooms');
    const r = await rae.request('conversations:list', {});
    assert.equal(r.statusCode, 429);
    assert.match(r.message, /cannot follow the list/);
    assert.deepEqual(ids(await rae.request('conversations:list', { subscribe: false })), []);
  } finally {
    await small.stop();
  }
});

test('a long text\'s preview is its first 100 characters, never half of one', async () => {
  const mo = await srv.client('mo');
  await mo.join('long-text');
  const long = 'é'.repeat(150);
  await mo.request('message:send', text('long-text', long));
  const item = byId(await mo.request('conversations:list', {}), 'long-text');
  assert.equal(item.lastMessage.preview, 'é'.repeat(100));
});

test('refusals: an unknown field, a bad limit, a before not in the list', async () => {
  const ned = await srv.client('ned');
  for (const [payload, code, re] of [
    [{ befor: 'x' }, 400, /unknown field befor/],
    [{ limit: 0 }, 400, /limit/],
    [{ limit: 101 }, 400, /limit/],
    [{ before: 7 }, 400, /before/],
    [{ subscribe: 'yes' }, 400, /subscribe must be a boolean/],
    [{ before: 'nowhere' }, 404, /not in your list/],
    ['x', 400, /object/],
  ]) {
    const r = await ned.request('conversations:list', payload);
    assert.equal(r.statusCode, code, JSON.stringify(payload));
    assert.match(r.message, re);
  }
  for (const [q, code] of [['?befor=x', 400], ['?limit=many', 400], ['?before=nowhere', 404], ['?userId=x', 400], ['?subscribe=false', 400]]) {
    assert.equal((await api('GET', `/api/users/ned/conversations${q}`)).status, code, q);
  }
});

test('the inbox survives kill -9: order, last messages and unread counts as they were acked', async () => {
  const before = (await api('GET', '/api/users/cy/conversations')).body;
  const beforeFay = (await api('GET', '/api/users/fay/conversations')).body;
  srv.process.kill('SIGKILL');
  await new Promise((resolve) => srv.process.once('exit', resolve));
  await start();
  assert.deepEqual((await api('GET', '/api/users/cy/conversations')).body, before);
  assert.deepEqual((await api('GET', '/api/users/fay/conversations')).body, beforeFay);
  // And it goes on from there.
  const dot = await srv.client('dot');
  await dot.join('a3');
  await dot.request('message:send', text('a3', 'after the crash'));
  const now = (await api('GET', '/api/users/cy/conversations')).body;
  assert.deepEqual(ids(now), ['a3', 'a2', 'a4', 'a1']);
  assert.equal(byId(now, 'a3').lastMessage.preview, 'after the crash');
  // cy has no socket in a3's room now: in an open conversation it is not a
  // recipient, so nothing became unread for it.
  assert.equal(byId(now, 'a3').unreadCount, 0);
  assert.equal(byId(now, 'a2').unreadCount, 1);
});

test.after(() => h.cleanup());
