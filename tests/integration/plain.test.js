// plain.test.js - the plain WebSocket endpoint /messages (SPEC §1): JSON
// text frames {"event", "data"} both ways, acks both ways, the refusal of an
// unauthenticated client, and the errors for frames it cannot use.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startParley, sioClient, connected, once, plainClient, frameQueue, waitFor } = require('./harness');

function within(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); }),
  ]);
}

function closePlain(ws) {
  if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
}

const isError = (f) => f && f.event === 'error';
const isAck = (n) => (f) => f && f.ack === n && f.event === undefined;

describe('plain WebSocket endpoint /messages', () => {
  let srv;
  const open = [];
  before(async () => { srv = await startParley(); });
  after(async () => {
    for (const c of open) {
      if (typeof c.disconnect === 'function') c.disconnect();
      else closePlain(c);
    }
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley exit: expected code 0, got ${JSON.stringify(st)}\n${srv.logs()}`);
  });

  async function plain(query) {
    const ws = plainClient(srv, query);
    open.push(ws);
    await ws.opened;
    return ws;
  }

  test('Postman steps: ws://127.0.0.1:PORT/messages?userId=test-user, conversation:join -> {"event":"conversation:joined","data":{"conversationId":"test-conversation-id","success":true}}', async () => {
    const ws = await plain('userId=test-user');
    ws.send(JSON.stringify({ event: 'conversation:join', data: { conversationId: 'test-conversation-id' } }));
    const f = await ws.next((x) => x.event === 'conversation:joined');
    assert.deepEqual(f, { event: 'conversation:joined', data: { conversationId: 'test-conversation-id', success: true } });
    closePlain(ws);
  });

  test('a client frame with "ack": 5 is answered with {"ack":5,"data":<result>}', async () => {
    const ws = await plain('userId=acker');
    ws.sendJson({ event: 'conversation:join', data: { conversationId: 'c-ack' }, ack: 5 });
    assert.deepEqual(await ws.next(isAck(5)), { ack: 5, data: { conversationId: 'c-ack', success: true } });
    ws.sendJson({ event: 'test:echo', data: { x: [1, 2], s: 'é' }, ack: 0 });
    assert.deepEqual(await ws.next(isAck(0)), { ack: 0, data: { x: [1, 2], s: 'é' } });
    closePlain(ws);
  });

  test('without a userId: an error frame with statusCode 401, then close code 4401', async () => {
    const ws = plainClient(srv, '');
    open.push(ws);
    const err = await ws.next(isError);
    assert.equal(err.data.statusCode, 401, `error frame: ${JSON.stringify(err)}`);
    assert.equal(err.data.status, 'error');
    assert.equal(typeof err.data.message, 'string');
    const c = await within(ws.closed, 3000, 'the refused client was not closed');
    assert.equal(c.code, 4401, `close code: expected 4401, got ${c.code} (${c.reason})`);
  });

  test('a plain client and a socket.io client in the same conversation each receive the other\'s typing:start', async () => {
    const ws = await plain('userId=plain-typer');
    const sio = sioClient(srv, '/messages', { query: { userId: 'sio-typer' } });
    open.push(sio);
    await connected(sio);
    ws.sendJson({ event: 'conversation:join', data: { conversationId: 'typing-mix' }, ack: 1 });
    await ws.next(isAck(1));
    await sio.timeout(3000).emitWithAck('conversation:join', { conversationId: 'typing-mix' });

    const toSio = once(sio, 'typing:start');
    ws.sendJson({ event: 'typing:start', data: { conversationId: 'typing-mix', isTyping: true } });
    const got = await toSio;
    assert.equal(got.conversationId, 'typing-mix');
    assert.equal(got.userId, 'plain-typer');
    assert.equal(got.isTyping, true);
    assert.equal(got.user.id, 'plain-typer');

    sio.emit('typing:start', { conversationId: 'typing-mix', isTyping: true });
    const f = await ws.next((x) => x.event === 'typing:start');
    assert.equal(f.data.conversationId, 'typing-mix');
    assert.equal(f.data.userId, 'sio-typer');
    assert.equal(f.data.isTyping, true);
    assert.equal(f.data.user.id, 'sio-typer');
    sio.disconnect();
    closePlain(ws);
  });

  test('an unknown event gets an error frame with statusCode 404, and the connection stays open', async () => {
    const ws = await plain('userId=unknown-evt');
    ws.sendJson({ event: 'no:such:event', data: {} });
    const err = await ws.next(isError);
    assert.equal(err.data.statusCode, 404, `error frame: ${JSON.stringify(err)}`);
    ws.sendJson({ event: 'test:echo', data: 'still here', ack: 2 });
    assert.deepEqual(await ws.next(isAck(2)), { ack: 2, data: 'still here' });
    closePlain(ws);
  });

  test('invalid JSON gets an error frame with statusCode 400 and the connection stays open (a valid event afterwards is answered)', async () => {
    const ws = await plain('userId=bad-json');
    ws.send('{"event":"test:echo","data":');
    const err = await ws.next(isError);
    assert.equal(err.data.statusCode, 400, `error frame: ${JSON.stringify(err)}`);
    ws.send('not json at all');
    assert.equal((await ws.next(isError)).data.statusCode, 400);
    ws.send('[1,2,3]');
    assert.equal((await ws.next(isError)).data.statusCode, 400, 'a JSON array instead of an object');
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.sendJson({ event: 'conversation:join', data: { conversationId: 'after-bad-json' } });
    const f = await ws.next((x) => x.event === 'conversation:joined');
    assert.deepEqual(f.data, { conversationId: 'after-bad-json', success: true });
    closePlain(ws);
  });

  test('an "ack" that is not a non-negative integer (-1, 1.5, "7", true) gets an error frame with statusCode 400', async () => {
    const ws = await plain('userId=bad-ack');
    for (const ack of [-1, 1.5, '7', true]) {
      ws.sendJson({ event: 'test:echo', data: 1, ack });
      const err = await ws.next(isError);
      assert.equal(err.data.statusCode, 400, `ack ${JSON.stringify(ack)}: ${JSON.stringify(err)}`);
    }
    ws.sendJson({ event: 'test:echo', data: 1, ack: 3 });
    assert.deepEqual(await ws.next(isAck(3)), { ack: 3, data: 1 });
    closePlain(ws);
  });

  test('a binary frame gets an error frame with statusCode 400, and the connection stays open', async () => {
    const ws = await plain('userId=binary-sender');
    ws.send(Buffer.from([1, 2, 3, 4]), { binary: true });
    const err = await ws.next(isError);
    assert.equal(err.data.statusCode, 400, `error frame: ${JSON.stringify(err)}`);
    ws.sendJson({ event: 'test:echo', data: 'ok', ack: 4 });
    assert.deepEqual(await ws.next(isAck(4)), { ack: 4, data: 'ok' });
    closePlain(ws);
  });

  test('server->client ack: test:ask sends {"event","data","ack":N}; the client\'s {"ack":N,"data":X} reaches the server (test:answer {error:null,args:[X]})', async () => {
    const ws = await plain('userId=asked');
    ws.sendJson({ event: 'test:ask', data: { event: 'quiz', data: { q: 'six times seven' }, timeout: 2000 } });
    const q = await ws.next((x) => x.event === 'quiz');
    assert.deepEqual(q.data, { q: 'six times seven' });
    assert.ok(Number.isInteger(q.ack) && q.ack >= 0, `the request frame has no ack id: ${JSON.stringify(q)}`);
    ws.sendJson({ ack: q.ack, data: { answer: 42 } });
    const answer = await ws.next((x) => x.event === 'test:answer' || x.event === 'error', 4000);
    assert.deepEqual(answer, { event: 'test:answer', data: { error: null, args: [{ answer: 42 }] } },
      `after replying {"ack":${q.ack},"data":{"answer":42}}`);
    closePlain(ws);
  });

  test('server->client ack left unanswered: the server callback gets "timeout"', async () => {
    const ws = await plain('userId=asked-silent');
    ws.sendJson({ event: 'test:ask', data: { event: 'quiz', data: 1, timeout: 200 } });
    const q = await ws.next((x) => x.event === 'quiz');
    assert.ok(Number.isInteger(q.ack), `request frame: ${JSON.stringify(q)}`);
    const answer = await ws.next((x) => x.event === 'test:answer');
    assert.equal(answer.data.error, 'timeout', `test:answer: ${JSON.stringify(answer)}`);
    closePlain(ws);
  });
});

describe('plain WebSocket liveness with PARLEY_PING_INTERVAL=300 PARLEY_PING_TIMEOUT=300', () => {
  let srv;
  before(async () => {
    srv = await startParley({ env: { PARLEY_PING_INTERVAL: '300', PARLEY_PING_TIMEOUT: '300' } });
  });
  after(async () => { assert.equal((await srv.stop()).code, 0); });

  function counted(ws) {
    ws.pings = 0;
    ws.on('ping', () => { ws.pings++; });
    return ws;
  }

  test('a client that answers WebSocket pings (ws answers them itself) stays connected through four pings and can still talk', async () => {
    const ws = counted(plainClient(srv, 'userId=ponger'));
    await ws.opened;
    // Four pings: one that went unanswered would have closed it before.
    await waitFor(() => ws.pings, (n) => n >= 4 || ws.readyState !== WebSocket.OPEN, 'four pings');
    assert.equal(ws.readyState, WebSocket.OPEN, 'the answering client was closed');
    ws.sendJson({ event: 'test:echo', data: 'still here', ack: 1 });
    assert.deepEqual(await ws.next(isAck(1)), { ack: 1, data: 'still here' });
    closePlain(ws);
  });

  // A plain client whose WebSocket library does not answer pings.
  function mute(userId) {
    const ws = frameQueue(new WebSocket(`ws://127.0.0.1:${srv.port}/messages?userId=${userId}`,
      { autoPong: false }), JSON.parse);
    ws.sendJson = (obj) => ws.send(JSON.stringify(obj));
    return ws;
  }

  test('a client that never answers pings and sends nothing is closed by the server', async () => {
    const ws = counted(mute('mute'));
    await ws.opened;
    await within(new Promise((r) => ws.once('close', r)), 10000, 'the silent client was not closed');
    assert.ok(ws.pings >= 1, `expected a ping before the close, got ${ws.pings}`);
  });

  test('a client that does not answer pings but keeps sending counts as alive', async () => {
    const ws = counted(mute('chatty'));
    await ws.opened;
    // It talks until four pings went unanswered: silent, it would have
    // been closed after the first.
    for (let i = 0; ws.pings < 4; i++) {
      assert.equal(ws.readyState, WebSocket.OPEN, `a client that talks was closed after ${ws.pings} pings`);
      ws.sendJson({ event: 'test:echo', data: i, ack: 100 + i });
      assert.deepEqual(await ws.next(isAck(100 + i)), { ack: 100 + i, data: i });
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(ws.readyState, WebSocket.OPEN, 'a client that talks was closed');
    closePlain(ws);
  });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
