// badinput.test.js - malformed input on every surface (Engine.IO over
// websocket and polling, Socket.IO packets, raw HTTP). Each case checks the
// protocol's answer to the offender, then that two bystander socket.io
// clients (websocket and polling), connected beforehand and in a room, still
// send and receive, and that the server is alive (SPEC §3: bad input never closes other users' sockets and
// never crashes the server).
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { sleep } = require('./harness');
const {
  rawSio, assertClosedByServer, terminate, rawTcp, statusOf, httpGet, httpPost, pollSession, withBystander,
} = require('./offender');

describe('malformed input never hurts other clients or the server', () => {
  const ctx = withBystander();
  const { bystanderUnharmed } = ctx;

  // One websocket case: send `payload` (after connecting /messages unless
  // nsp is null) and expect the server to close that connection.
  async function closesConnection(what, send, { nsp = '/messages' } = {}) {
    const ws = await rawSio(ctx.srv, 'offender', nsp);
    try {
      send(ws);
      await assertClosedByServer(ws, what);
    } finally {
      terminate(ws);
    }
    await bystanderUnharmed(what);
  }

  test('Engine.IO packet type 9 over websocket: the server closes that connection', async () => {
    await closesConnection('eio type 9', (ws) => ws.send('9'));
  });

  test('Engine.IO packet type 9 in a polling POST: the server ends that session (its next GET gets 400)', async () => {
    const sid = await pollSession(ctx.srv, 'poll-offender');
    await httpPost(ctx.srv, sid, '9');
    const g = await httpGet(ctx.srv, sid);
    assert.equal(g.status, 400, `GET after the bad packet: expected 400, got ${g.status} ${JSON.stringify(g.body)}`);
    await bystanderUnharmed('eio type 9 over polling');
  });

  test('an empty websocket text frame: the server closes that connection', async () => {
    await closesConnection('empty frame', (ws) => ws.send(''));
  });

  test('Socket.IO packet "4x" (unknown type): the server closes that connection', async () => {
    await closesConnection('4x', (ws) => ws.send('4x'));
  });

  test('Socket.IO packet "49" (type 9): the server closes that connection', async () => {
    await closesConnection('49', (ws) => ws.send('49'));
  });

  test('EVENT with a non-array payload 42/messages,{"a":1}: the server closes that connection', async () => {
    await closesConnection('non-array event', (ws) => ws.send('42/messages,{"a":1}'));
  });

  test('EVENT whose first element is not a string 42/messages,[1]: the server closes that connection', async () => {
    await closesConnection('non-string event name', (ws) => ws.send('42/messages,[1]'));
  });

  test('EVENT with invalid JSON 42/messages,["x",{]: the server closes that connection', async () => {
    await closesConnection('invalid JSON event', (ws) => ws.send('42/messages,["x",{]'));
  });

  test('EVENT with JSON nested 10000 deep: the server closes that connection (no stack overflow)', async () => {
    const deep = '['.repeat(10000) + ']'.repeat(10000);
    await closesConnection('10000-deep JSON', (ws) => ws.send(`42/messages,["test:echo",${deep}]`));
  });

  test('BINARY_EVENT announcing 2 attachments followed by a text packet: the server closes that connection', async () => {
    await closesConnection('missing attachments', (ws) => {
      ws.send('452-/messages,["test:echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      ws.send(Buffer.from([1, 2, 3]));
      ws.send('42/messages,["test:echo",1]');
    });
  });

  test('BINARY_EVENT with an attachment count of 99999: the server closes that connection', async () => {
    await closesConnection('attachment count 99999', (ws) => ws.send('4599999-/messages,["test:echo",{"_placeholder":true,"num":0}]'));
  });

  test('a binary frame with no binary event pending: the server closes that connection', async () => {
    await closesConnection('stray binary frame', (ws) => ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef])));
  });

  test('BINARY_ACK whose placeholder names no attachment: the server\'s ack callback gets err "invalid", not an empty success', async () => {
    const ws = await rawSio(ctx.srv, 'bad-acker');
    try {
      ws.send('42/messages,["test:ask",{"event":"quiz","data":1,"timeout":2000}]');
      const ask = await ws.next((f) => typeof f === 'string' && /^42\/messages,\d+\["quiz"/.test(f));
      const id = /^42\/messages,(\d+)/.exec(ask)[1];
      ws.send(`461-/messages,${id}[{"_placeholder":true,"num":3}]`);
      ws.send(Buffer.from([1]));
      const answer = await ws.next((f) => typeof f === 'string' && f.startsWith('42/messages,["test:answer"'));
      const [, body] = JSON.parse(answer.slice('42/messages,'.length));
      assert.equal(body.error, 'invalid', `test:answer: ${answer}`);
    } finally {
      terminate(ws);
    }
    await bystanderUnharmed('binary ack with a bad placeholder');
  });

  test('ACK for an unknown id is ignored: the connection stays open and answers the next event', async () => {
    const ws = await rawSio(ctx.srv, 'stray-acker');
    try {
      ws.send('43/messages,99[1]');
      ws.send('42/messages,5["test:echo","after the stray ack"]');
      const ack = await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,5'));
      assert.equal(ack, '43/messages,5["after the stray ack"]');
      assert.equal(ws.readyState, WebSocket.OPEN);
    } finally {
      terminate(ws);
    }
    await bystanderUnharmed('ack for an unknown id');
  });

  test('CONNECT to an unknown namespace gets CONNECT_ERROR 44/nope,{"message":"Invalid namespace"} and the connection stays usable', async () => {
    const ws = await rawSio(ctx.srv, 'ns-prober', null);
    try {
      ws.send('40/nope,');
      const err = await ws.next((f) => typeof f === 'string' && f.startsWith('44'));
      assert.equal(err.slice(0, 8), '44/nope,', `CONNECT_ERROR: ${err}`);
      assert.deepEqual(JSON.parse(err.slice(8)), { message: 'Invalid namespace' });
      ws.send('40/messages,{"userId":"ns-prober"}');
      assert.match(await ws.next((f) => typeof f === 'string' && f.startsWith('40/messages,')), /^40\/messages,\{"sid":/);
    } finally {
      terminate(ws);
    }
    await bystanderUnharmed('connect to an unknown namespace');
  });

  test('CONNECT with a non-object payload 40/messages,[1]: the server closes that connection', async () => {
    await closesConnection('non-object CONNECT payload', (ws) => ws.send('40/messages,[1]'), { nsp: null });
  });

  test('invalid UTF-8 in a websocket text frame: the server closes that connection (RFC 6455 §8.1, 1007)', async () => {
    const ws = await rawSio(ctx.srv, 'utf8-offender');
    try {
      // ws does not validate what it sends: these bytes go out as one text frame.
      const bytes = Buffer.concat([
        Buffer.from('42/messages,1["test:echo","'),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
        Buffer.from('"]'),
      ]);
      ws.send(bytes, { binary: false });
      const c = await assertClosedByServer(ws, 'invalid UTF-8');
      assert.equal(c.code, 1007, `close code for invalid UTF-8: expected 1007, got ${c.code} (${c.reason})`);
    } finally {
      terminate(ws);
    }
    await bystanderUnharmed('invalid UTF-8');
  });

  test('an event name over 256 bytes gets an error event with statusCode 400 (and the ack gets the error); the connection stays', async () => {
    const ws = await rawSio(ctx.srv, 'long-namer');
    try {
      ws.send(`42/messages,6["${'n'.repeat(300)}",{}]`);
      const ev = await ws.next((f) => typeof f === 'string' && f.startsWith('42/messages,["error"'));
      const [, body] = JSON.parse(ev.slice('42/messages,'.length));
      assert.equal(body.statusCode, 400, `error event: ${ev}`);
      assert.equal(body.status, 'error');
      const ack = await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,6'));
      assert.equal(JSON.parse(ack.slice('43/messages,6'.length))[0].statusCode, 400, `ack: ${ack}`);
      ws.send('42/messages,7["test:echo","still here"]');
      assert.equal(await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,7')), '43/messages,7["still here"]');
    } finally {
      terminate(ws);
    }
    await bystanderUnharmed('event name over 256 bytes');
  });

  test('polling POST with a b-packet of invalid base64: the server ends that session (its next GET gets 400)', async () => {
    const sid = await pollSession(ctx.srv, 'b64-offender');
    await httpPost(ctx.srv, sid, 'b!!!not*base64!!!');
    const g = await httpGet(ctx.srv, sid);
    assert.equal(g.status, 400, `GET after the bad base64: expected 400, got ${g.status} ${JSON.stringify(g.body)}`);
    await bystanderUnharmed('invalid base64');
  });
});

describe('malformed HTTP never hurts other clients or the server', () => {
  const ctx = withBystander();
  const { bystanderUnharmed } = ctx;

  test('HTTP: a garbage request line does not get a 2xx, the connection is closed, and the server stays up', async () => {
    const r = await rawTcp(ctx.srv.port, 'GARBAGE\r\n\r\n');
    assert.equal(r.closedBy, 'server', `the server did not close the connection: ${JSON.stringify(r.out)}`);
    const st = statusOf(r.out);
    assert.ok(st === null || (st >= 400 && st < 500), `reply to garbage: ${JSON.stringify(r.out.slice(0, 80))}`);
    await sleep(50);
    await bystanderUnharmed('garbage request line');
  });

  test('HTTP: a binary garbage request line is refused with a 4xx and the server stays up', async () => {
    // RFC 9112 §3 prefers 400; libwebsockets' own request parser answers 403,
    // and changing that would mean patching lws, which parley does not vendor.
    const r = await rawTcp(ctx.srv.port, '\x00\x01\x02 blah blah\r\n\r\n');
    const st = statusOf(r.out);
    assert.ok(st >= 400 && st < 500, `reply to garbage: ${JSON.stringify(r.out.slice(0, 80))}`);
    await sleep(50);
    await bystanderUnharmed('binary garbage request line');
  });

  test('HTTP: a flood of 1000 headers is refused (no 2xx, connection closed) and the server stays up', async () => {
    let headers = '';
    for (let i = 0; i < 1000; i++) headers += `X-Flood-${i}: ${'v'.repeat(50)}\r\n`;
    const r = await rawTcp(ctx.srv.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
    assert.equal(r.closedBy, 'server', 'the server did not close the connection');
    const st = statusOf(r.out);
    assert.ok(st === null || (st >= 400 && st < 500), `reply to the header flood: ${JSON.stringify(r.out.slice(0, 80))}`);
    await sleep(50);
    await bystanderUnharmed('header flood');
  });

  test('HTTP: a %00 in the path or the query is refused with 400, polling and upgrade alike', async () => {
    const upgrade = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    for (const [target, extra] of [
      ['/socket.io/?EIO=4&transport=polling&userId=bob%00x', ''],
      ['/socket.io/?EIO=4&transport=websocket&note=a%00b&userId=bob', upgrade],
      ['/health%00z', ''],
    ]) {
      const r = await rawTcp(ctx.srv.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`);
      assert.equal(statusOf(r.out), 400, `${target}: ${JSON.stringify(r.out.slice(0, 80))}`);
      assert.equal(r.closedBy, 'server', target);
    }
    await bystanderUnharmed('a %00 in the request target');
  });

  test('HTTP: one 20 KB header is refused (no 2xx, connection closed) and the server stays up', async () => {
    const r = await rawTcp(ctx.srv.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ${'v'.repeat(20000)}\r\n\r\n`);
    assert.equal(r.closedBy, 'server', 'the server did not close the connection');
    const st = statusOf(r.out);
    assert.ok(st === null || (st >= 400 && st < 500), `reply to the huge header: ${JSON.stringify(r.out.slice(0, 80))}`);
    await sleep(50);
    await bystanderUnharmed('huge header');
  });

});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
