// args.test.js - several arguments both ways (issue 17): a handler gets
// every argument of an event, sock:emit, a broadcast and sock:request send
// every argument, and an ack is every value a handler returns; binaries in
// any argument; parley.null in any position. With socket.io-client, raw
// Socket.IO packets and the plain WebSocket endpoint ("args": [...]), and
// the argument lists parley refuses: not an array, longer than
// PARLEY_MAX_ARGS. Server behaviour comes from tests/plugins/testkit.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startParley, sioClient, connected, once, plainClient, metric, cleanup,
} = require('./harness');
const { rawSio, terminate } = require('./offender');

const MAX_ARGS = 16;
const NSP = '42/messages,';

describe('several arguments', () => {
  let srv;
  before(async () => { srv = await startParley({ env: { PARLEY_MAX_ARGS: String(MAX_ARGS) } }); });
  after(async () => {
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley exit: ${JSON.stringify(st)}\n${srv.logs()}`);
    cleanup();
  });

  async function sio(userId) {
    return connected(sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'] }));
  }

  async function plain(userId) {
    const ws = plainClient(srv, `userId=${userId}`);
    await ws.opened;
    return ws;
  }

  // Emits with a callback and resolves with every argument the ack gave.
  function ackOf(s, ...args) {
    return new Promise((resolve, reject) => {
      s.timeout(5000).emit(...args, (err, ...vals) => (err ? reject(err) : resolve(vals)));
    });
  }

  // Resolves with every argument of the next `event`.
  function argsOf(s, event, ms = 5000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
      s.once(event, (...vals) => { clearTimeout(t); resolve(vals); });
    });
  }

  test('socket.emit("x", 1, "2", {"3":[true]}, cb): the handler gets three arguments and the ack gives all three back', async () => {
    const s = await sio('args-ack');
    try {
      assert.deepEqual(await ackOf(s, 'test:args', 1, '2', { 3: [true] }), [1, '2', { 3: [true] }]);
      // One argument and none, as before.
      assert.deepEqual(await ackOf(s, 'test:args', { one: 1 }), [{ one: 1 }]);
      assert.deepEqual(await ackOf(s, 'test:args'), []);
      // null in any position is kept (parley.null in Lua).
      assert.deepEqual(await ackOf(s, 'test:args', null, 2, null), [null, 2, null]);
    } finally {
      s.disconnect();
    }
  });

  test('over long-polling too: several arguments and two binaries in two arguments, each way', async () => {
    const s = await connected(sioClient(srv, '/messages', { query: { userId: 'args-poll' }, transports: ['polling'] }));
    try {
      assert.deepEqual(await ackOf(s, 'test:args', 1, '2', { 3: [true] }), [1, '2', { 3: [true] }]);
      const [a, mid, b] = await ackOf(s, 'test:args', Buffer.from([1]), null, Buffer.from([2, 3]));
      assert.ok(Buffer.from(a).equals(Buffer.from([1])) && Buffer.from(b).equals(Buffer.from([2, 3])));
      assert.equal(mid, null);
    } finally {
      s.disconnect();
    }
  });

  test('sock:emit sends every argument: 42["test:bounce-args",1,"2",{"3":[true]}] comes back with all of them, byte for byte', async () => {
    const ws = await rawSio(srv, 'args-raw');
    try {
      ws.send(`${NSP}7["test:bounce-args",1,"2",{"3":[true]}]`);
      assert.equal(await ws.next((f) => typeof f === 'string' && f.startsWith(`${NSP}["test:bounced-args"`)),
        `${NSP}["test:bounced-args",1,"2",{"3":[true]}]`);
      assert.equal(await ws.next((f) => typeof f === 'string' && f.startsWith('43/messages,7')), '43/messages,7[3]');
    } finally {
      terminate(ws);
    }
  });

  test('a filter sees the first argument and may replace it; the others reach the handler untouched; its refusal still answers the ack', async () => {
    const s = await sio('args-filter');
    try {
      assert.deepEqual(await ackOf(s, 'test:filtered-args', 1, '2', [3]), [{ filtered: 1 }, '2', [3]]);
      const [body] = await ackOf(s, 'test:filtered-args', 'refuse', 'more');
      assert.equal(body.statusCode, 403, JSON.stringify(body));
    } finally {
      s.disconnect();
    }
  });

  test('an error-first ack: return parley.null, result reaches cb(null, result)', async () => {
    const s = await sio('args-errfirst');
    try {
      assert.deepEqual(await ackOf(s, 'test:error-first', 'a', 'b'), [null, { got: 2 }]);
    } finally {
      s.disconnect();
    }
  });

  test('a nil between arguments is null, nils after the last are none (emit and ack)', async () => {
    const s = await sio('args-holes');
    try {
      const ev = argsOf(s, 'test:holes');
      assert.deepEqual(await ackOf(s, 'test:holes'), ['a', null, 'c']);
      assert.deepEqual(await ev, [1, null, 3]);
    } finally {
      s.disconnect();
    }
  });

  test('binaries in any argument, both ways: two attachments in two arguments are both kept (452-["message",{placeholder 0},{placeholder 1}])', async () => {
    const s = await sio('args-binary');
    try {
      const a = Buffer.from([1, 2, 3]);
      const b = Buffer.from('second');
      const got = await ackOf(s, 'test:args', a, 'between', { nested: b });
      assert.equal(got.length, 3);
      assert.ok(Buffer.from(got[0]).equals(a), `first: ${got[0]}`);
      assert.equal(got[1], 'between');
      assert.ok(Buffer.from(got[2].nested).equals(b), `third: ${JSON.stringify(got[2])}`);
      // And out through sock:emit, as a raw client sees the packet.
      const ev = argsOf(s, 'test:bounced-args');
      assert.deepEqual(await ackOf(s, 'test:bounce-args', a, b), [2]);
      const [x, y] = await ev;
      assert.ok(Buffer.from(x).equals(a) && Buffer.from(y).equals(b), 'bounced binaries differ');
    } finally {
      s.disconnect();
    }
  });

  test('the raw packet 452-["test:bounce-args",{placeholder 0},{placeholder 1}] comes back with both attachments, the placeholders written as socket.io-parser writes them', async () => {
    const ws = await rawSio(srv, 'args-raw-binary');
    try {
      ws.send('452-/messages,["test:bounce-args",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      ws.send(Buffer.from([0xa]));
      ws.send(Buffer.from([0xb, 0xc]));
      assert.equal(await ws.next((f) => typeof f === 'string' && f.startsWith('452-/messages,["test:bounced-args"')),
        '452-/messages,["test:bounced-args",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepEqual([...await ws.next((f) => Buffer.isBuffer(f))], [0xa]);
      assert.deepEqual([...await ws.next((f) => Buffer.isBuffer(f))], [0xb, 0xc]);
    } finally {
      terminate(ws);
    }
  });

  test('a broadcast sends every argument: Socket.IO gets them as arguments, plain WebSocket as "args" (binaries as base64)', async () => {
    const s = await sio('args-bc-sender');
    const r = await sio('args-bc-sio');
    const p = await plain('args-bc-plain');
    try {
      await ackOf(r, 'test:join', { room: 'args-room' });
      p.sendJson({ event: 'test:join', data: { room: 'args-room' }, ack: 1 });
      await p.next((f) => f.ack === 1);
      const ev = argsOf(r, 'test:broadcast-args');
      assert.deepEqual(await ackOf(s, 'test:broadcast-args', 'args-room', 1, '2', { 3: [true] }), [2]);
      assert.deepEqual(await ev, [1, '2', { 3: [true] }]);
      assert.deepEqual(await p.next((f) => f.event === 'test:broadcast-args'),
        { event: 'test:broadcast-args', args: [1, '2', { 3: [true] }] });
      const ev2 = argsOf(r, 'test:broadcast-args');
      await ackOf(s, 'test:broadcast-args', 'args-room', Buffer.from('hi'), 'x');
      const [bin, x] = await ev2;
      assert.ok(Buffer.from(bin).equals(Buffer.from('hi')));
      assert.equal(x, 'x');
      assert.deepEqual(await p.next((f) => f.event === 'test:broadcast-args'),
        { event: 'test:broadcast-args', args: [Buffer.from('hi').toString('base64'), 'x'] });
    } finally {
      s.disconnect();
      r.disconnect();
      terminate(p);
    }
  });

  test('sock:request sends every argument and its callback gets every value of the answer', async () => {
    const s = await sio('args-request');
    try {
      s.on('test:q', (a, b, c, cb) => cb(`${a}-${b}`, null, c));
      const answer = argsOf(s, 'test:answer-args');
      assert.deepEqual(await ackOf(s, 'test:ask-args', 'test:q', 1, 'two', { three: [3] }), [true]);
      assert.deepEqual(await answer, [null, '1-two', null, { three: [3] }]);
    } finally {
      s.disconnect();
    }
  });

  test('plain WebSocket: one argument stays "data", several go and come as "args" (events, acks, requests)', async () => {
    const p = await plain('args-plain');
    try {
      p.sendJson({ event: 'test:args', args: [1, '2', { 3: [true] }], ack: 1 });
      assert.deepEqual(await p.next((f) => f.ack === 1), { ack: 1, args: [1, '2', { 3: [true] }] });
      p.sendJson({ event: 'test:args', data: 5, ack: 2 });
      assert.deepEqual(await p.next((f) => f.ack === 2), { ack: 2, data: 5 });
      p.sendJson({ event: 'test:args', args: [5], ack: 3 });
      assert.deepEqual(await p.next((f) => f.ack === 3), { ack: 3, data: 5 });
      p.sendJson({ event: 'test:args', args: [], ack: 4 });
      assert.deepEqual(await p.next((f) => f.ack === 4), { ack: 4, data: null });
      p.sendJson({ event: 'test:bounce-args', args: [null, 'b'] });
      assert.deepEqual(await p.next((f) => f.event === 'test:bounced-args'),
        { event: 'test:bounced-args', args: [null, 'b'] });
      p.sendJson({ event: 'test:ask-args', args: ['test:q', 1, 'two'], ack: 5 });
      const q = await p.next((f) => f.event === 'test:q');
      assert.deepEqual(q.args, [1, 'two']);
      p.sendJson({ ack: q.ack, args: ['x', null, [1]] });
      assert.deepEqual(await p.next((f) => f.event === 'test:answer-args'),
        { event: 'test:answer-args', args: [null, 'x', null, [1]] });
    } finally {
      terminate(p);
    }
  });

  test('plain WebSocket: "args" that is not an array, or with "data" too: a 400 error (answering its ack), counted; the socket goes on', async () => {
    const p = await plain('args-plain-bad');
    try {
      const before = await metric(srv, 'parley_protocol_errors_total{kind="plain_bad_args"}');
      for (const [i, frame] of [
        { event: 'test:args', args: { 0: 1 } },
        { event: 'test:args', args: '[1,2]' },
        { event: 'test:args', args: null },
        { event: 'test:args', data: 1, args: [1, 2] },
      ].entries()) {
        p.sendJson({ ...frame, ack: 10 + i });
        const ack = await p.next((f) => f.ack === 10 + i);
        assert.equal(ack.data.statusCode, 400, JSON.stringify(ack));
        assert.match(ack.data.message, /args/);
      }
      assert.equal(await metric(srv, 'parley_protocol_errors_total{kind="plain_bad_args"}'), before + 4);
      p.sendJson({ event: 'test:args', args: [1, 2], ack: 20 });
      assert.deepEqual(await p.next((f) => f.ack === 20), { ack: 20, args: [1, 2] });
    } finally {
      terminate(p);
    }
  });

  test('PARLEY_MAX_ARGS: an event with more arguments gets a 400 (and its ack), counted and logged; exactly the maximum passes; others unharmed', async () => {
    const s = await sio('args-many');
    const p = await plain('args-many-plain');
    const bystander = await sio('args-many-bystander');
    try {
      const before = await metric(srv, 'parley_limits_total{limit="max_args"}');
      const max = Array.from({ length: MAX_ARGS }, (_, i) => i);
      assert.deepEqual(await ackOf(s, 'test:args', ...max), max);
      const many = Array.from({ length: 5000 }, (_, i) => i);
      const err = once(s, 'error');
      const [body] = await ackOf(s, 'test:args', ...many);
      assert.equal(body.statusCode, 400, JSON.stringify(body));
      assert.match(body.message, /too many arguments/);
      assert.equal((await err).statusCode, 400);
      p.sendJson({ event: 'test:args', args: many, ack: 1 });
      const ack = await p.next((f) => f.ack === 1);
      assert.equal(ack.data.statusCode, 400, JSON.stringify(ack));
      assert.equal(await metric(srv, 'parley_limits_total{limit="max_args"}'), before + 2);
      assert.match(srv.logs(), /the event test:args with 5000 arguments, over PARLEY_MAX_ARGS \(16\): refused/);
      // The same sockets, and another, go on.
      assert.deepEqual(await ackOf(s, 'test:args', 'a', 'b'), ['a', 'b']);
      assert.deepEqual(await ackOf(bystander, 'test:args', 'c'), ['c']);
    } finally {
      s.disconnect();
      bystander.disconnect();
      terminate(p);
    }
  });

  test('PARLEY_MAX_ARGS: an answer to sock:request with more arguments: the callback is told "invalid", the client gets a 400, counted', async () => {
    const s = await sio('args-many-answer');
    try {
      const before = await metric(srv, 'parley_limits_total{limit="max_args"}');
      s.on('test:q', (cb) => cb(...Array.from({ length: 3000 }, (_, i) => i)));
      const answer = argsOf(s, 'test:answer-args');
      const err = once(s, 'error');
      await ackOf(s, 'test:ask-args', 'test:q');
      assert.deepEqual(await answer, ['invalid']);
      assert.equal((await err).statusCode, 400);
      assert.equal(await metric(srv, 'parley_limits_total{limit="max_args"}'), before + 1);
      assert.deepEqual(await ackOf(s, 'test:args', 1), [1]);
    } finally {
      s.disconnect();
    }
  });
});
