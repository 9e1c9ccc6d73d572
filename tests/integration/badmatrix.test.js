// badmatrix.test.js - the bad-input matrix: malformed or hostile input on
// each surface a client reaches (Socket.IO over websocket and polling, the
// plain WebSocket endpoint, the HTTP API, the Engine.IO HTTP routes). Every
// case checks three things: the offender gets the protocol's answer (an
// error event, a 4xx, or its own connection closed with the right code);
// the refusal is counted in /metrics; and two bystander socket.io clients,
// connected throughout, still send and receive. A message stored before
// the first case is still there after the last (SPEC §3: bad input harms
// no one else and loses no data). badinput.test.js holds the cases that
// need more than one step.
'use strict';
const { describe, test, before } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { plainClient } = require('./harness');
const {
  SEP, rawSio, rawWs, assertClosedByServer, terminate, rawTcp, statusOf, httpGet, httpPost,
  pollSession, pollUrl, withBystander, refusals,
} = require('./offender');

const KEY = 'matrix-api-key';
// Above the scripts' 64 KB content limit, so that both can be reached.
const MAX_PAYLOAD = 131072;
const NSP = '42/messages,';

// ---- what an offender should see ----

// A Socket.IO client (raw websocket, /messages connected) sends `packets`;
// it gets an error event with `status` and its connection stays usable.
async function sioError(srv, packets, status) {
  const ws = await rawSio(srv, 'offender');
  try {
    for (const p of [].concat(packets)) ws.send(p);
    const ev = await ws.next((f) => typeof f === 'string' && f.startsWith(`${NSP}["error"`));
    const [, body] = JSON.parse(ev.slice(NSP.length));
    assert.equal(body.statusCode, status, `error event: ${ev}`);
    assert.equal(typeof body.message, 'string');
    ws.send(`${NSP}900["test:echo","still here"]`);
    assert.equal(await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,900')),
      '43/messages,900["still here"]');
  } finally {
    terminate(ws);
  }
}

// The same over an ack: the ack carries the error and no event is needed.
// (event, ...arguments, status)
async function sioAckError(srv, event, ...rest) {
  const status = rest.pop();
  const ws = await rawSio(srv, 'offender');
  try {
    ws.send(`${NSP}31${JSON.stringify([event, ...rest])}`);
    const ack = await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,31'));
    const [body] = JSON.parse(ack.slice('43/messages,31'.length));
    assert.equal(body.statusCode, status, `ack: ${ack}`);
  } finally {
    terminate(ws);
  }
}

// A Socket.IO client sends `packets` and the server closes its connection,
// with `code` when given.
async function sioCloses(srv, packets, { nsp = '/messages', code } = {}) {
  const ws = await rawSio(srv, 'offender', nsp);
  try {
    for (const p of [].concat(packets)) ws.send(p);
    const c = await assertClosedByServer(ws, String(packets).slice(0, 40));
    if (code) assert.equal(c.code, code, `close code: ${c.code} (${c.reason})`);
  } finally {
    terminate(ws);
  }
}

// A plain WebSocket client sends `frame` and gets {"event":"error"} with
// `status`; its connection stays usable.
async function plainError(srv, frame, status, opts = {}) {
  const ws = plainClient(srv, 'userId=plain-offender');
  try {
    await ws.opened;
    ws.send(frame, opts);
    const f = await ws.next((x) => x && x.event === 'error');
    assert.equal(f.data.statusCode, status, `error frame: ${JSON.stringify(f)}`);
    ws.sendJson({ event: 'test:echo', data: 'still here', ack: 77 });
    assert.deepEqual(await ws.next((x) => x && x.ack === 77), { ack: 77, data: 'still here' });
  } finally {
    terminate(ws);
  }
}

// A plain WebSocket client sends `frame` and the server closes it with `code`.
async function plainCloses(srv, frame, code, opts = {}) {
  const ws = plainClient(srv, 'userId=plain-offender');
  try {
    await ws.opened;
    ws.send(frame, opts);
    const c = await assertClosedByServer(ws, 'plain frame');
    assert.equal(c.code, code, `close code: ${c.code} (${c.reason})`);
  } finally {
    terminate(ws);
  }
}

// An HTTP request gets `status` and, for JSON answers, a message.
async function httpStatus(srv, method, path, { body, headers = {}, key = KEY, status }) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
  const r = await fetch(`${srv.url}${path}`, { method, headers: h, body });
  const text = await r.text();
  assert.equal(r.status, status, `${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
  if ((r.headers.get('content-type') || '').startsWith('application/json')) {
    assert.equal(typeof JSON.parse(text).message, 'string', `no message in ${text}`);
  }
}

// A polling session sends `body` in a POST; the session ends (its next GET
// gets 400).
async function pollEnds(srv, body) {
  const sid = await pollSession(srv, 'poll-offender');
  await httpPost(srv, sid, body);
  const g = await httpGet(srv, sid);
  assert.equal(g.status, 400, `GET after the bad POST: ${g.status} ${JSON.stringify(g.body)}`);
}

// A connect that names no usable user: CONNECT_ERROR, counted as a 401.
async function sioConnectRefused(srv, auth) {
  const ws = rawWs(srv);
  try {
    await ws.opened;
    await ws.next();
    ws.send(`40/messages,${JSON.stringify(auth)}`);
    const f = await ws.next((x) => typeof x === 'string' && x.startsWith('44/messages,'));
    assert.match(JSON.parse(f.slice('44/messages,'.length)).message, /unauthorized/);
  } finally {
    terminate(ws);
  }
}

const conv = 'matrix-conv';
// message:send with a valid payload changed by `change` (undefined drops a field).
const send = (change) => `${NSP}${JSON.stringify(['message:send',
  { conversationId: conv, clientMessageId: 'm-1', type: 'text', content: 'x', ...change }])}`;

// A request whose body length is not plain, written in one piece with a
// second request behind it: exactly one answer, `status`, then the server
// closes; what follows is never read as a request (RFC 9112 §6.3: a proxy
// in front might frame it otherwise, and smuggle that second request).
// `answers` when the connection answered earlier requests first.
async function oneAnswerThenClose(srv, request, status, answers = []) {
  const r = await rawTcp(srv.port, `${request}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
  const got = (r.out.match(/HTTP\/1\.1 \d{3}/g) || []).map((l) => Number(l.slice(9)));
  assert.deepEqual(got, [...answers, status], `answers: ${JSON.stringify(r.out.slice(0, 400))}`);
  assert.equal(r.closedBy, 'server', 'the connection was left open');
}

const rawHead = (method, path, lines) =>
  `${method} ${path} HTTP/1.1\r\nHost: x\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`;
const smuggle = ['Content-Length: 4', 'Transfer-Encoding: chunked'];

// ---- the matrix ----

// A plain WebSocket whose query identifies nobody: an error frame with 401,
// then close 4401.
async function plainUnidentified(s, query) {
  const ws = plainClient(s, query);
  try {
    const f = await ws.next((x) => x && x.event === 'error');
    assert.equal(f.data.statusCode, 401);
    assert.equal((await assertClosedByServer(ws, `query "${query}"`)).code, 4401);
  } finally {
    terminate(ws);
  }
}

const cases = [
  // Socket.IO: payloads the scripts refuse (error event, connection stays).
  ['socket.io', 'message:send with no conversationId', (s) => sioError(s, send({ conversationId: undefined }), 400)],
  ['socket.io', 'message:send with content an object', (s) => sioError(s, send({ content: { a: 1 } }), 400)],
  ['socket.io', 'message:send with content over the length limit', (s) => sioError(s, send({ content: 'x'.repeat(70000) }), 400)],
  ['socket.io', 'message:send with a payload that is an array', (s) => sioError(s, `${NSP}["message:send",[1,2]]`, 400)],
  ['socket.io', 'message:send with no payload', (s) => sioError(s, `${NSP}["message:send"]`, 400)],
  ['socket.io', 'message:send as another user (userId not the socket\'s)', (s) => sioError(s, send({ userId: 'someone-else' }), 403)],
  ['socket.io', 'conversation:join with a numeric conversationId', (s) => sioError(s, `${NSP}["conversation:join",{"conversationId":5}]`, 400)],
  ['socket.io', 'conversation:join with a 10 KB conversationId', (s) => sioError(s, `${NSP}${JSON.stringify(['conversation:join', { conversationId: 'c'.repeat(10240) }])}`, 400)],
  ['socket.io', 'conversation:join with a NUL in the conversationId', (s) => sioError(s, `${NSP}["conversation:join",{"conversationId":"a\\u0000b"}]`, 400)],
  ['socket.io', 'typing:start with isTyping a string', (s) => sioError(s, `${NSP}["typing:start",{"conversationId":"${conv}","isTyping":"yes"}]`, 400)],
  ['socket.io', 'message:read of a message id that does not exist', (s) => sioError(s, `${NSP}["message:read",{"conversationId":"${conv}","messageIds":["no-such-id"]}]`, 404)],
  ['socket.io', 'messages:sync with limit -5', (s) => sioError(s, `${NSP}["messages:sync",{"conversationId":"${conv}","limit":-5}]`, 400)],
  ['socket.io', 'messages:sync with a field it does not know (befor)', (s) => sioError(s, `${NSP}["messages:sync",{"conversationId":"${conv}","befor":"x"}]`, 400)],
  ['socket.io', 'messages:sync with two starting points', (s) => sioError(s, `${NSP}["messages:sync",{"conversationId":"${conv}","latest":true,"after":"x"}]`, 400)],
  ['socket.io', 'conversations:list with limit 0', (s) => sioError(s, `${NSP}["conversations:list",{"limit":0}]`, 400)],
  ['socket.io', 'conversations:list with subscribe not a boolean', (s) => sioError(s, `${NSP}["conversations:list",{"subscribe":"yes"}]`, 400)],
  ['socket.io', 'presence:query with userIds not an array', (s) => sioError(s, `${NSP}["presence:query",{"userIds":"alice"}]`, 400)],
  ['socket.io', 'an event no script handles', (s) => sioError(s, `${NSP}["no:such:event",{}]`, 404)],
  ['socket.io', 'an empty event name', (s) => sioError(s, `${NSP}["",{}]`, 400)],
  ['socket.io', 'a refused event with an ack: the ack carries the error', (s) => sioAckError(s, 'conversation:join', {}, 400)],
  // Socket.IO: packets that break the protocol (that connection closes).
  ['socket.io', 'an event for a namespace never connected', async (s) => {
    // Ignored as Socket.IO does, and counted; the connection stays.
    const ws = await rawSio(s, 'offender');
    try {
      ws.send('42/elsewhere,["test:echo",1]');
      ws.send(`${NSP}5["test:echo","after"]`);
      assert.equal(await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,5')), '43/messages,5["after"]');
    } finally {
      terminate(ws);
    }
  }],
  ['socket.io', 'an ack id past 2^53', (s) => sioCloses(s, `${NSP}9007199254740993["test:echo",1]`)],
  ['socket.io', 'an EVENT whose array is empty (no name)', (s) => sioCloses(s, `${NSP}[]`)],
  ['socket.io', 'an EVENT whose arguments are an object, not an array', (s) => sioCloses(s, `${NSP}{"0":"test:args","1":2}`)],
  ['socket.io', 'an ACK whose arguments are an object, not an array', (s) => sioCloses(s, '43/messages,0{"0":1}')],
  ['socket.io', 'an event with 5,000 arguments (over PARLEY_MAX_ARGS)', (s) => sioError(s, `${NSP}["test:args",${'0,'.repeat(4999)}0]`, 400)],
  ['socket.io', 'an event with 5,000 arguments, with an ack: the ack says 400', (s) => sioAckError(s, 'test:args', ...Array(5000).fill(0), 400)],
  ['socket.io', 'an attachment count with no dash', (s) => sioCloses(s, '451/messages,["test:echo",{"_placeholder":true,"num":0}]')],
  ['socket.io', 'a placeholder for an attachment that was not sent', (s) => sioError(s, ['451-/messages,["test:echo",{"_placeholder":true,"num":3}]', Buffer.from([1])], 400)],
  ['socket.io', 'a placeholder whose num is not a number', (s) => sioError(s, ['451-/messages,["test:echo",{"_placeholder":true,"num":"0"}]', Buffer.from([1])], 400)],
  ['socket.io', 'message:send with content a binary attachment', (s) => sioError(s, [`451-/messages,${JSON.stringify(['message:send', { conversationId: conv, clientMessageId: 'b-1', type: 'image', content: { _placeholder: true, num: 0 } }])}`, Buffer.from([0xff, 0xd8, 0xff])], 400)],
  ['socket.io', 'message:send with a binary attachment inside an object content', (s) => sioError(s, [`451-/messages,${JSON.stringify(['message:send', { conversationId: conv, clientMessageId: 'b-2', type: 'document', content: { name: 'a.txt', file: { _placeholder: true, num: 0 } } }])}`, Buffer.from('text bytes')], 400)],
  ['socket.io', 'a CONNECT payload that is a string', (s) => sioCloses(s, '40/messages,"alice"', { nsp: null })],
  ['socket.io', 'a text frame over PARLEY_MAX_PAYLOAD (close 1009)', (s) => sioCloses(s, `${NSP}["test:echo","${'x'.repeat(MAX_PAYLOAD + 10)}"]`, { code: 1009 })],
  ['socket.io', 'Engine.IO "upgrade" on an already-websocket connection', (s) => sioCloses(s, '5')],
  ['socket.io', 'CONNECT with a 200-character userId: CONNECT_ERROR', (s) => sioConnectRefused(s, { userId: 'u'.repeat(200) })],
  ['socket.io', 'CONNECT with a numeric userId: CONNECT_ERROR', (s) => sioConnectRefused(s, { userId: 42 })],
  ['socket.io', 'CONNECT with no userId at all: CONNECT_ERROR', (s) => sioConnectRefused(s, {})],
  // Engine.IO over HTTP: bad requests get 400 and end only their own session.
  ['engine.io', 'polling with EIO=3', async (s) => {
    const r = await fetch(`${s.url}/socket.io/?EIO=3&transport=polling`);
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { code: 5, message: 'Unsupported protocol version' });
  }],
  ['engine.io', 'an unknown transport', async (s) => {
    const r = await fetch(`${s.url}/socket.io/?EIO=4&transport=flashsocket`);
    assert.equal(r.status, 400);
    assert.equal((await r.json()).code, 0);
  }],
  ['engine.io', 'a poll for a sid that does not exist', async (s) => {
    const r = await fetch(pollUrl(s, '&sid=AAAAAAAAAAAAAAAAAAAA'));
    assert.equal(r.status, 400);
    assert.equal((await r.json()).code, 1);
  }],
  ['engine.io', 'a handshake by POST', async (s) => {
    const r = await fetch(pollUrl(s), { method: 'POST', body: '40' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).code, 2);
  }],
  ['engine.io', 'a PUT on a session', async (s) => {
    const sid = await pollSession(s, 'put-offender');
    const r = await fetch(pollUrl(s, `&sid=${sid}`), { method: 'PUT', body: '3' });
    assert.equal(r.status, 400);
  }],
  ['engine.io', 'a POST body over PARLEY_MAX_PAYLOAD: 413, that session ends', async (s) => {
    const sid = await pollSession(s, 'big-offender');
    const r = await httpPost(s, sid, `${NSP}["test:echo","${'x'.repeat(MAX_PAYLOAD + 10)}"]`);
    assert.equal(r.status, 413);
    assert.equal((await httpGet(s, sid)).status, 400);
  }],
  ['engine.io', 'a POST of a Socket.IO packet with invalid JSON: that session ends', (s) => pollEnds(s, `${NSP}["x",{]`)],
  ['engine.io', 'a POST of an empty packet between separators: that session ends', (s) => pollEnds(s, `3${SEP}${SEP}3`)],
  ['engine.io', 'a websocket upgrade naming a sid that does not exist', async (s) => {
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/socket.io/?EIO=4&transport=websocket&sid=nope`);
    const status = await new Promise((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      ws.on('open', () => resolve('opened'));
      ws.on('error', () => {});
    });
    terminate(ws);
    assert.equal(status, 400);
  }],
  // The plain WebSocket endpoint.
  ['plain ws', 'invalid JSON', (s) => plainError(s, '{"event":', 400)],
  ['plain ws', 'a JSON array instead of an object', (s) => plainError(s, '["message:send",{}]', 400)],
  ['plain ws', 'conversations:list with a field it does not know', (s) => plainError(s, '{"event":"conversations:list","data":{"page":2}}', 400)],
  ['plain ws', 'an event that is a number', (s) => plainError(s, '{"event":5,"data":{}}', 400)],
  ['plain ws', 'an empty event name', (s) => plainError(s, '{"event":"","data":{}}', 400)],
  ['plain ws', 'an ack of -1', (s) => plainError(s, '{"event":"test:echo","data":1,"ack":-1}', 400)],
  ['plain ws', 'an ack of 1.5', (s) => plainError(s, '{"event":"test:echo","data":1,"ack":1.5}', 400)],
  ['plain ws', '"args" that is an object, not an array', (s) => plainError(s, '{"event":"test:args","args":{"0":1}}', 400)],
  ['plain ws', '"args" and "data" together', (s) => plainError(s, '{"event":"test:args","data":1,"args":[1,2]}', 400)],
  ['plain ws', '"args" with 5,000 arguments (over PARLEY_MAX_ARGS)', (s) => plainError(s, JSON.stringify({ event: 'test:args', args: Array(5000).fill(0) }), 400)],
  ['plain ws', 'JSON nested 10000 deep', (s) => plainError(s, `{"event":"test:echo","data":${'['.repeat(10000)}${']'.repeat(10000)}}`, 400)],
  ['plain ws', 'a binary frame', (s) => plainError(s, Buffer.from([1, 2, 3]), 400, { binary: true })],
  ['plain ws', 'an unknown event', (s) => plainError(s, '{"event":"no:such:event","data":{}}', 404)],
  ['plain ws', 'message:send with content a number', (s) => plainError(s, JSON.stringify({ event: 'message:send', data: { conversationId: conv, clientMessageId: 'p-1', type: 'text', content: 5 } }), 400)],
  ['plain ws', 'conversation:join as another user', (s) => plainError(s, JSON.stringify({ event: 'conversation:join', data: { conversationId: conv, userId: 'not-me' } }), 403)],
  ['plain ws', 'invalid UTF-8 (close 1007)', (s) => plainCloses(s, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 1007, { binary: false })],
  ['plain ws', 'a frame over PARLEY_MAX_PAYLOAD (close 1009)', (s) => plainCloses(s, JSON.stringify({ event: 'test:echo', data: 'x'.repeat(MAX_PAYLOAD + 10) }), 1009)],
  ['plain ws', 'no userId: an error frame, then close 4401', (s) => plainUnidentified(s, '')],
  ['plain ws', 'a userId that is not UTF-8 (userId=%FF): no identity, an error frame, then close 4401',
    (s) => plainUnidentified(s, 'userId=%FF')],
  // The HTTP API.
  ['http api', 'no key', (s) => httpStatus(s, 'GET', `/api/conversations/${conv}/messages`, { key: null, status: 401 })],
  ['http api', 'a wrong key', (s) => httpStatus(s, 'GET', `/api/conversations/${conv}/messages`, { key: 'wrong', status: 401 })],
  ['http api', 'history with latest=yes', (s) => httpStatus(s, 'GET', `/api/conversations/${conv}/messages?latest=yes`, { status: 400 })],
  ['http api', 'a user\'s conversations with a parameter it does not know', (s) => httpStatus(s, 'GET', '/api/users/alice/conversations?befor=x', { status: 400 })],
  ['http api', 'a body that is not JSON', (s) => httpStatus(s, 'POST', `/api/conversations/${conv}/messages`, { body: '{"senderId":', status: 400 })],
  ['http api', 'a body that is not application/json', (s) => httpStatus(s, 'POST', `/api/conversations/${conv}/messages`, { body: 'senderId=a', headers: { 'content-type': 'text/plain' }, status: 415 })],
  ['http api', 'a body over PARLEY_MAX_PAYLOAD', (s) => httpStatus(s, 'POST', `/api/conversations/${conv}/messages`, { body: JSON.stringify({ senderId: 'a', clientMessageId: 'h-2', type: 'text', content: 'x'.repeat(MAX_PAYLOAD + 10) }), status: 413 })],
  ['http api', 'a message with no senderId', (s) => httpStatus(s, 'POST', `/api/conversations/${conv}/messages`, { body: JSON.stringify({ clientMessageId: 'h-1', type: 'text', content: 'hi' }), status: 400 })],
  ['http api', 'a path no route has', (s) => httpStatus(s, 'GET', '/api/no/such/route', { status: 404 })],
  ['http api', 'a method the path does not take', (s) => httpStatus(s, 'DELETE', `/api/conversations/${conv}/messages`, { status: 405 })],
  ['http api', 'limit=abc', (s) => httpStatus(s, 'GET', `/api/conversations/${conv}/messages?limit=abc`, { status: 400 })],
  ['http api', 'a status that is neither delivered nor read', (s) => httpStatus(s, 'PATCH', '/api/messages/x/status', { body: JSON.stringify({ userId: 'a', status: 'eaten' }), status: 400 })],
  // Raw HTTP.
  ['http', 'a path that climbs out of the root', async (s) => {
    const r = await rawTcp(s.port, 'GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n');
    const st = statusOf(r.out);
    assert.ok(st >= 400 && st < 500, `reply: ${JSON.stringify(r.out.slice(0, 80))}`);
    assert.doesNotMatch(r.out, /root:/);
  }],
  ['http', 'an unknown path', async (s) => {
    const r = await fetch(`${s.url}/no-such-page`);
    assert.equal(r.status, 404);
  }],
  // Requests whose framing is ambiguous, on each HTTP path: 400 or 411, then closed.
  ['http api', 'Content-Length and Transfer-Encoding together: 400, closed, the request behind it unanswered',
    (s) => oneAnswerThenClose(s, rawHead('POST', `/api/conversations/${conv}/messages`,
      [`Authorization: Bearer ${KEY}`, 'Content-Type: application/json', ...smuggle]) + '0\r\n\r\n', 400)],
  ['http api', 'Transfer-Encoding: chunked: 411, closed, the chunks not read as a request',
    (s) => oneAnswerThenClose(s, rawHead('POST', `/api/conversations/${conv}/messages`,
      [`Authorization: Bearer ${KEY}`, 'Content-Type: application/json', 'Transfer-Encoding: chunked']) + '0\r\n\r\n', 411)],
  ['engine.io', 'a polling POST with Content-Length and Transfer-Encoding: 400, closed', async (s) => {
    const sid = await pollSession(s, 'smuggler');
    await oneAnswerThenClose(s, rawHead('POST', `/socket.io/?EIO=4&transport=polling&sid=${sid}`, smuggle) + '0\r\n\r\n', 400);
  }],
  ['engine.io', 'a polling POST without Content-Length: 411, closed (lws would read a 100 MB body)', async (s) => {
    const sid = await pollSession(s, 'no-length');
    await oneAnswerThenClose(s, rawHead('POST', `/socket.io/?EIO=4&transport=polling&sid=${sid}`, []), 411);
  }],
  ['http', '/healthz with Content-Length and Transfer-Encoding: 400, closed',
    (s) => oneAnswerThenClose(s, rawHead('GET', '/healthz', smuggle) + '0\r\n\r\n', 400)],
  ['http', 'two Content-Length headers that differ: 400, closed',
    (s) => oneAnswerThenClose(s, rawHead('GET', '/healthz', ['Content-Length: 0', 'Content-Length: 40']), 400)],
  ['http', 'a Content-Length that is not a number: 400, closed',
    (s) => oneAnswerThenClose(s, rawHead('GET', '/metrics', ['Content-Length: 4x']) + 'abcd', 400)],
  ['http', 'on a kept-alive connection, after a good request: 200, then 400 and closed',
    (s) => oneAnswerThenClose(s, rawHead('GET', '/healthz', []) + rawHead('GET', '/healthz', smuggle) + '0\r\n\r\n', 400, [200])],
  ['http', 'a POST with a body pipelined behind a GET: 400, closed, the server does not spin (lws 4.1.6 loops forever on it)', async (s) => {
    const post = rawHead('POST', `/api/conversations/${conv}/messages`,
      [`Authorization: Bearer ${KEY}`, 'Content-Type: application/json', 'Content-Length: 2']) + '{}';
    await oneAnswerThenClose(s, rawHead('GET', '/healthz', []) + post, 400, [200]);
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
  }],
  ['http', 'a WebSocket upgrade with a body: 400', async (s) => {
    const r = await rawTcp(s.port, rawHead('GET', '/socket.io/?EIO=4&transport=websocket', ['Upgrade: websocket',
      'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Content-Length: 2']) + '{}');
    assert.equal(statusOf(r.out), 400, r.out.slice(0, 200));
    assert.equal(r.closedBy, 'server');
  }],
];

describe('the bad-input matrix: each refused, counted, and harmless to others', () => {
  const ctx = withBystander({ env: { PARLEY_API_KEY: KEY, PARLEY_MAX_PAYLOAD: String(MAX_PAYLOAD) } });
  let stored;

  before(async () => {
    const r = await fetch(`${ctx.srv.url}/api/conversations/${conv}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ senderId: 'keeper', clientMessageId: 'keep-1', type: 'text', content: 'kept through the matrix' }),
    });
    assert.equal(r.status, 201);
    stored = await r.json();
  });

  for (const [surface, what, run] of cases) {
    test(`${surface}: ${what}`, async () => {
      const before = await refusals(ctx.srv);
      await run(ctx.srv);
      const after = await refusals(ctx.srv);
      assert.ok(after > before, `${what}: not counted in /metrics (${before} -> ${after})`);
      await ctx.bystanderUnharmed(`${surface}: ${what}`);
    });
  }

  test('the message stored before the first case is still there', async () => {
    const r = await fetch(`${ctx.srv.url}/api/conversations/${conv}/messages`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    const body = await r.json();
    assert.ok(body.messages.some((m) => m.messageId === stored.messageId && m.content === 'kept through the matrix'),
      `the stored message is gone: ${JSON.stringify(body).slice(0, 300)}`);
  });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
