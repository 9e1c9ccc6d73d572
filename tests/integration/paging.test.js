// paging.test.js - history paging a chat screen can use (issue 21): a chat
// opens at its newest messages (`latest: true`) and loads older ones as the
// user scrolls up (`before: messageId`), each page oldest first with
// hasMore saying whether older ones exist; `after` keeps its meaning; an
// unknown field, or two starting points, is a 400; a members-only
// conversation pages for its members only. Over socket.io-client and over
// GET /api/conversations/{id}/messages, on a conversation of 110 messages.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('../harness/parley-testing');

const KEY = 'paging-test-key';
const TOTAL = 110;
let srv;
const ids = []; // ids[i] is message n{i+1}, seq i+1, of 'long'

async function api(method, p, body) {
  const r = await fetch(`${srv.url}${p}`, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const contents = (page) => page.messages.map((m) => m.content);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `n${from + i}`);

test.before(async () => {
  srv = await parley.start({ env: { PARLEY_API_KEY: KEY } });
  for (let i = 1; i <= TOTAL; i++) {
    const r = await api('POST', '/api/conversations/long/messages',
      { senderId: 'writer', clientMessageId: `m${i}`, type: 'text', content: `n${i}` });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids.push(r.body.messageId);
  }
});
test.after(async () => {
  await srv.stop();
  parley.cleanup();
});

test('latest: the newest `limit` messages, oldest first, hasMore when older ones exist (not messages 1-100 of 110)', async () => {
  const c = await srv.client('reader');
  const page = await c.request('messages:sync', { conversationId: 'long', latest: true, limit: 20 });
  assert.deepEqual(contents(page), range(91, 110));
  assert.deepEqual(page.messages.map((m) => m.seq), Array.from({ length: 20 }, (_, i) => 91 + i));
  assert.equal(page.hasMore, true);
  // The default limit is 50; a limit past the history takes all of it.
  const dflt = await c.request('messages:sync', { conversationId: 'long', latest: true });
  assert.deepEqual(contents(dflt), range(61, 110));
  const all = await c.request('messages:sync', { conversationId: 'long', latest: true, limit: 500 });
  assert.deepEqual(contents(all), range(1, 110));
  assert.equal(all.hasMore, false);
  // latest: false is no starting point: the oldest first, as before.
  const first = await c.request('messages:sync', { conversationId: 'long', latest: false, limit: 3 });
  assert.deepEqual(contents(first), range(1, 3));
  assert.deepEqual(await c.request('messages:sync', { conversationId: 'nothing-here', latest: true }),
    { messages: [], hasMore: false });
});

test('before: the `limit` messages just before it, oldest first; scrolling up from the newest meets every message once, in order', async () => {
  const c = await srv.client('scroller');
  const p1 = await c.request('messages:sync', { conversationId: 'long', before: ids[90], limit: 50 });
  assert.deepEqual(contents(p1), range(41, 90));
  assert.equal(p1.hasMore, true);
  const p2 = await c.request('messages:sync', { conversationId: 'long', before: ids[40], limit: 50 });
  assert.deepEqual(contents(p2), range(1, 40));
  assert.equal(p2.hasMore, false);
  // Exactly `limit` left: no more after it.
  const exact = await c.request('messages:sync', { conversationId: 'long', before: ids[10], limit: 10 });
  assert.deepEqual(contents(exact), range(1, 10));
  assert.equal(exact.hasMore, false);
  assert.deepEqual(await c.request('messages:sync', { conversationId: 'long', before: ids[0] }),
    { messages: [], hasMore: false });

  let page = await c.request('messages:sync', { conversationId: 'long', latest: true, limit: 17 });
  const seen = [...contents(page)];
  while (page.hasMore) {
    page = await c.request('messages:sync', { conversationId: 'long', before: page.messages[0].messageId, limit: 17 });
    seen.unshift(...contents(page));
  }
  assert.deepEqual(seen, range(1, 110));
});

test('after keeps its meaning: the messages after it, oldest first, hasMore when newer ones exist', async () => {
  const c = await srv.client('catcher');
  const page = await c.request('messages:sync', { conversationId: 'long', after: ids[99], limit: 5 });
  assert.deepEqual(contents(page), range(101, 105));
  assert.equal(page.hasMore, true);
  const rest = await c.request('messages:sync', { conversationId: 'long', after: ids[104] });
  assert.deepEqual(contents(rest), range(106, 110));
  assert.equal(rest.hasMore, false);
});

test('an unknown field, two starting points, a latest that is not a boolean or an unknown before: refused, nothing answered', async () => {
  const c = await srv.client('typo');
  const cases = [
    [{ conversationId: 'long', befor: ids[50] }, 400, /unknown field befor/],
    [{ conversationId: 'long', newest: true }, 400, /unknown field newest/],
    [{ conversationId: 'long', after: ids[1], before: ids[5] }, 400, /exclude each other/],
    [{ conversationId: 'long', latest: true, before: ids[5] }, 400, /exclude each other/],
    [{ conversationId: 'long', latest: true, after: ids[5] }, 400, /exclude each other/],
    [{ conversationId: 'long', latest: 'yes' }, 400, /latest must be a boolean/],
    [{ conversationId: 'long', before: 7 }, 400, /before/],
    [{ conversationId: 'long', before: 'ffffffffffffffff' }, 404, /not found/],
    [{ conversationId: 'other', before: ids[5] }, 404, /not found/],
  ];
  for (const [payload, code, message] of cases) {
    const r = await c.request('messages:sync', payload);
    assert.equal(r.statusCode, code, `${JSON.stringify(payload)}: ${JSON.stringify(r)}`);
    assert.match(r.message, message);
  }
  // userId, which any payload may carry (held to the socket's), is not unknown.
  const ok = await c.request('messages:sync', { conversationId: 'long', userId: 'typo', latest: true, limit: 1 });
  assert.deepEqual(contents(ok), ['n110']);
});

test('a members-only conversation pages for its members only: latest and before are 403 to anyone else, as sync is', async () => {
  assert.equal((await api('PUT', '/api/conversations/pair/members', { members: ['pa', 'pb'] })).status, 200);
  const pa = await srv.client('pa');
  const pairIds = [];
  for (let i = 1; i <= 5; i++) {
    pairIds.push((await pa.request('message:send', { conversationId: 'pair', clientMessageId: `p${i}`, type: 'text', content: `n${i}` })).messageId);
  }
  const outsider = await srv.client('outsider');
  for (const payload of [{ latest: true }, { before: pairIds[4] }, { after: pairIds[0] }, {}]) {
    const r = await outsider.request('messages:sync', { conversationId: 'pair', ...payload });
    assert.equal(r.statusCode, 403, JSON.stringify(payload));
  }
  const pb = await srv.client('pb');
  assert.deepEqual(contents(await pb.request('messages:sync', { conversationId: 'pair', latest: true, limit: 2 })), ['n4', 'n5']);
  assert.deepEqual(contents(await pb.request('messages:sync', { conversationId: 'pair', before: pairIds[2] })), ['n1', 'n2']);
});

test('GET /api/conversations/{id}/messages takes latest and before the same way; an unknown parameter is a 400', async () => {
  const latest = await api('GET', '/api/conversations/long/messages?latest=true&limit=10');
  assert.equal(latest.status, 200);
  assert.deepEqual(contents(latest.body), range(101, 110));
  assert.equal(latest.body.hasMore, true);
  const before = await api('GET', `/api/conversations/long/messages?before=${ids[100]}&limit=100`);
  assert.deepEqual(contents(before.body), range(1, 100));
  assert.equal(before.body.hasMore, false);
  const after = await api('GET', `/api/conversations/long/messages?after=${ids[107]}`);
  assert.deepEqual(contents(after.body), range(109, 110));
  // Each message with its statuses, as sync gives them.
  assert.equal(latest.body.messages[0].status, 'sent');
  for (const [query, code] of [
    ['befor=x', 400], ['latest=yes', 400], [`latest=true&before=${ids[3]}`, 400],
    ['userId=writer', 400], ['conversationId=other', 400], ['limit=many', 400],
    ['before=ffffffffffffffff', 404],
  ]) {
    const r = await api('GET', `/api/conversations/long/messages?${query}`);
    assert.equal(r.status, code, `${query}: ${JSON.stringify(r.body)}`);
  }
});
