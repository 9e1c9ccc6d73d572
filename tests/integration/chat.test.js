// chat.test.js - the default chat scripts (scripts/auth, validate, chat)
// end to end through socket.io-client against the real parley binary:
// conversation rooms, typing relay and expiry, payload
// validation, and room broadcasts (via the testkit plugin's test:broadcast).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startParley, sioClient, connected, once, silent } = require('./harness');

// scripts/chat.lua TYPING_TTL_MS: a typing:start not refreshed within this
// long is ended by the server with typing:stop.
const TYPING_TTL_MS = 8000;

let srv;

before(async () => { srv = await startParley(); });
after(async () => {
  const st = await srv.stop();
  assert.deepStrictEqual({ code: st.code }, { code: 0 }, `parley did not exit cleanly:\n${srv.logs()}`);
});

// A connected /messages socket for userId (display name `name`).
async function client(userId, name) {
  const auth = name ? { userId, name } : { userId };
  return connected(sioClient(srv, '/messages', { auth, transports: ['websocket'] }));
}

function closeAll(...sockets) {
  for (const s of sockets) if (s) s.disconnect();
}

// Joins conversation `id` and returns the ack.
function join(sock, id) {
  return sock.timeout(3000).emitWithAck('conversation:join', { conversationId: id });
}

// The next `event` whose payload satisfies pred (other traffic is skipped).
function onceMatching(sock, event, pred, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const on = (data) => {
      if (!pred(data)) return;
      clearTimeout(t);
      sock.off(event, on);
      resolve(data);
    };
    const t = setTimeout(() => {
      sock.off(event, on);
      reject(new Error(`no '${event}' matching ${pred} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on(event, on);
  });
}

// Resolves with the payloads of `event` that came before the next `marker`
// event (the marker is a later broadcast the socket must get: a socket's
// events arrive in order, so by then any copy of `event` is here).
function collectUntil(sock, event, marker, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const on = (data) => { got.push(data); };
    const t = setTimeout(() => { sock.off(event, on); reject(new Error(`no '${marker}' within ${timeoutMs} ms`)); }, timeoutMs);
    sock.on(event, on);
    sock.once(marker, () => { clearTimeout(t); sock.off(event, on); resolve(got); });
  });
}

test('conversation:join replies conversation:joined {conversationId, success:true} and acks it; conversation:leave replies conversation:left', async () => {
  const a = await client('join-a');
  try {
    const joinedEvent = once(a, 'conversation:joined');
    const ack = await join(a, 'conv-join');
    assert.deepStrictEqual(ack, { conversationId: 'conv-join', success: true });
    assert.deepStrictEqual(await joinedEvent, { conversationId: 'conv-join', success: true });
    assert.deepStrictEqual((await a.timeout(3000).emitWithAck('test:rooms')).sort(),
      ['conversation:conv-join', 'user:join-a']);

    const leftEvent = once(a, 'conversation:left');
    const leaveAck = await a.timeout(3000).emitWithAck('conversation:leave', { conversationId: 'conv-join' });
    assert.deepStrictEqual(leaveAck, { conversationId: 'conv-join', success: true });
    assert.deepStrictEqual(await leftEvent, { conversationId: 'conv-join', success: true });
    assert.deepStrictEqual(await a.timeout(3000).emitWithAck('test:rooms'), ['user:join-a']);
  } finally {
    closeAll(a);
  }
});

test('after conversation:leave a socket no longer receives the conversation\'s typing events', async () => {
  const a = await client('leave-a');
  const b = await client('leave-b');
  try {
    await join(a, 'conv-leave');
    await join(b, 'conv-leave');
    await b.timeout(3000).emitWithAck('conversation:leave', { conversationId: 'conv-leave' });
    const bQuiet = silent(b, 'typing:start');
    await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-leave', userId: 'leave-a', isTyping: true });
    assert.strictEqual(await bQuiet, true, 'a socket that left must not get typing:start');
    await a.timeout(3000).emitWithAck('typing:stop', { conversationId: 'conv-leave', userId: 'leave-a', isTyping: false });
  } finally {
    closeAll(a, b);
  }
});

test('typing:start reaches the other room members with user {id, name}, not the sender nor a socket outside the room; typing:stop is relayed', async () => {
  const a = await client('typer-a', 'Alice');
  const b = await client('typer-b', 'Bob');
  const c = await client('typer-c', 'Carol');
  try {
    await join(a, 'conv-typing');
    await join(b, 'conv-typing');
    await join(c, 'conv-elsewhere');

    const bGot = once(b, 'typing:start');
    const aQuiet = silent(a, 'typing:start');
    const cQuiet = silent(c, 'typing:start');
    // The seed's payload, as its client example sends it.
    const ack = await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-typing', userId: 'typer-a', isTyping: true });
    assert.deepStrictEqual(ack, { success: true });
    assert.deepStrictEqual(await bGot, {
      conversationId: 'conv-typing', userId: 'typer-a', isTyping: true, user: { id: 'typer-a', name: 'Alice' },
    });
    assert.strictEqual(await aQuiet, true, 'the sender must not get its own typing:start');
    assert.strictEqual(await cQuiet, true, 'a socket outside the room must not get typing:start');

    const bStop = once(b, 'typing:stop');
    const aStopQuiet = silent(a, 'typing:stop');
    const cStopQuiet = silent(c, 'typing:stop');
    await a.timeout(3000).emitWithAck('typing:stop', { conversationId: 'conv-typing', userId: 'typer-a', isTyping: false });
    assert.deepStrictEqual(await bStop, { conversationId: 'conv-typing', userId: 'typer-a', isTyping: false });
    assert.strictEqual(await aStopQuiet, true, 'the sender must not get its own typing:stop');
    assert.strictEqual(await cStopQuiet, true, 'a socket outside the room must not get typing:stop');
  } finally {
    closeAll(a, b, c);
  }
});

test('typing:start without userId in the payload is relayed with the socket\'s own userId', async () => {
  const a = await client('typer-nouid', 'Nadia');
  const b = await client('typer-nouid-peer');
  try {
    await join(a, 'conv-nouid');
    await join(b, 'conv-nouid');
    const bGot = once(b, 'typing:start');
    await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-nouid', isTyping: true });
    assert.deepStrictEqual(await bGot, {
      conversationId: 'conv-nouid', userId: 'typer-nouid', isTyping: true, user: { id: 'typer-nouid', name: 'Nadia' },
    });
    await a.timeout(3000).emitWithAck('typing:stop', { conversationId: 'conv-nouid' });
  } finally {
    closeAll(a, b);
  }
});

test('typing:start that is not refreshed expires: the room gets typing:stop from the server after the TTL (sender does not)',
  { timeout: TYPING_TTL_MS + 10000 }, async () => {
    const a = await client('expire-a', 'Eve');
    const b = await client('expire-b');
    try {
      await join(a, 'conv-expire');
      await join(b, 'conv-expire');
      const started = once(b, 'typing:start');
      await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-expire', userId: 'expire-a', isTyping: true });
      await started;
      let aGotStop = false;
      a.on('typing:stop', () => { aGotStop = true; });
      // Nobody sends typing:stop: the server's timer must.
      const stopped = await once(b, 'typing:stop', TYPING_TTL_MS + 5000);
      assert.deepStrictEqual(stopped, { conversationId: 'conv-expire', userId: 'expire-a', isTyping: false });
      assert.strictEqual(aGotStop, false, 'the typer must not get the expiry typing:stop');
      // Expired once, it does not fire again.
      assert.strictEqual(await silent(b, 'typing:stop', 300), true);
    } finally {
      closeAll(a, b);
    }
  });

test('typing ends with typing:stop to the room when the typer\'s last socket disconnects', async () => {
  const a = await client('gone-typer');
  const b = await client('gone-peer');
  try {
    await join(a, 'conv-gone');
    await join(b, 'conv-gone');
    const started = once(b, 'typing:start');
    await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-gone', userId: 'gone-typer', isTyping: true });
    await started;
    const stopped = once(b, 'typing:stop');
    a.disconnect();
    assert.deepStrictEqual(await stopped, { conversationId: 'conv-gone', userId: 'gone-typer', isTyping: false });
  } finally {
    closeAll(a, b);
  }
});

// Presence (user:online / user:offline, lastSeen) is tested in presence.test.js.

test('validation: missing conversationId -> 400 naming conversationId (ack and error event); payload not an object -> 400', async () => {
  const a = await client('validate-a');
  try {
    for (const event of ['conversation:join', 'conversation:leave', 'typing:start', 'typing:stop']) {
      for (const payload of [{}, { conversationId: '' }, { conversationId: 42 }]) {
        const errorEvent = once(a, 'error');
        const ack = await a.timeout(3000).emitWithAck(event, payload);
        assert.deepStrictEqual({ status: ack.status, statusCode: ack.statusCode }, { status: 'error', statusCode: 400 },
          `${event} ${JSON.stringify(payload)}: got ${JSON.stringify(ack)}`);
        assert.match(ack.message, /conversationId/);
        assert.deepStrictEqual(await errorEvent, ack);
      }
      for (const payload of ['conv-1', 42, [{ conversationId: 'c' }], null]) {
        const errorEvent = once(a, 'error');
        const ack = await a.timeout(3000).emitWithAck(event, payload);
        assert.deepStrictEqual({ status: ack.status, statusCode: ack.statusCode }, { status: 'error', statusCode: 400 },
          `${event} ${JSON.stringify(payload)}: got ${JSON.stringify(ack)}`);
        assert.deepStrictEqual(await errorEvent, ack);
      }
    }
    // A rejected join joined nothing.
    assert.deepStrictEqual(await a.timeout(3000).emitWithAck('test:rooms'), ['user:validate-a']);
    assert.strictEqual(a.connected, true);
  } finally {
    closeAll(a);
  }
});

test('validation: a typing payload whose userId is not the socket\'s is refused with 403 and not relayed', async () => {
  const a = await client('honest-a');
  const b = await client('honest-b');
  try {
    await join(a, 'conv-403');
    await join(b, 'conv-403');
    const bQuiet = silent(b, 'typing:start');
    const errorEvent = once(a, 'error');
    const ack = await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-403', userId: 'honest-b', isTyping: true });
    assert.deepStrictEqual({ status: ack.status, statusCode: ack.statusCode }, { status: 'error', statusCode: 403 },
      `got ${JSON.stringify(ack)}`);
    assert.deepStrictEqual(await errorEvent, ack);
    assert.strictEqual(await bQuiet, true, 'an impersonating typing:start must not be relayed');

    const stopAck = await a.timeout(3000).emitWithAck('typing:stop', { conversationId: 'conv-403', userId: 'honest-b', isTyping: false });
    assert.deepStrictEqual(stopAck.statusCode, 403);
    const joinAck = await a.timeout(3000).emitWithAck('conversation:join', { conversationId: 'conv-403b', userId: 'honest-b' });
    assert.deepStrictEqual(joinAck.statusCode, 403);
    // isTyping must be a boolean when given.
    const typeAck = await a.timeout(3000).emitWithAck('typing:start', { conversationId: 'conv-403', isTyping: 'yes' });
    assert.deepStrictEqual({ statusCode: typeAck.statusCode }, { statusCode: 400 });
    assert.match(typeAck.message, /isTyping/);
  } finally {
    closeAll(a, b);
  }
});

test('rooms: a socket in two rooms gets a broadcast to both rooms exactly once; the ack counts sockets reached', async () => {
  const sender = await client('bc-sender');
  const x = await client('bc-x');
  const y = await client('bc-y');
  try {
    assert.deepStrictEqual((await x.timeout(3000).emitWithAck('test:join', { room: 'r1' })).sort(), ['r1', 'user:bc-x']);
    assert.deepStrictEqual((await x.timeout(3000).emitWithAck('test:join', { room: 'r2' })).sort(), ['r1', 'r2', 'user:bc-x']);
    await y.timeout(3000).emitWithAck('test:join', { room: 'r2' });

    const xGot = collectUntil(x, 'bc:hello', 'bc:end');
    const yGot = collectUntil(y, 'bc:hello', 'bc:end');
    const senderGot = [];
    sender.on('bc:hello', (d) => senderGot.push(d));
    const reached = await sender.timeout(3000).emitWithAck('test:broadcast',
      { rooms: ['r1', 'r2'], event: 'bc:hello', data: { n: 1 } });
    assert.deepStrictEqual(reached, 2);
    // A second broadcast marks the end of what the first could bring.
    await sender.timeout(3000).emitWithAck('test:broadcast', { rooms: ['r1', 'r2'], event: 'bc:end', data: {} });
    assert.deepStrictEqual(await xGot, [{ n: 1 }], 'a member of both rooms gets the broadcast once');
    assert.deepStrictEqual(await yGot, [{ n: 1 }]);
    // What went to the sender would have come before its own ack.
    assert.deepStrictEqual(senderGot, [], 'a socket in neither room gets nothing');
  } finally {
    closeAll(sender, x, y);
  }
});

test('rooms: exceptSelf skips the sender; exceptRooms skips every member of those rooms', async () => {
  const s = await client('ex-sender');
  const x = await client('ex-x');
  const y = await client('ex-y');
  try {
    for (const sock of [s, x, y]) await sock.timeout(3000).emitWithAck('test:join', { room: 'team' });
    await x.timeout(3000).emitWithAck('test:join', { room: 'muted' });

    let xGot = once(x, 'ex:one');
    let yGot = once(y, 'ex:one');
    const sQuiet = silent(s, 'ex:one');
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:broadcast',
      { rooms: ['team'], exceptSelf: true, event: 'ex:one', data: 'self-excluded' }), 2);
    assert.deepStrictEqual(await Promise.all([xGot, yGot]), ['self-excluded', 'self-excluded']);
    assert.strictEqual(await sQuiet, true, 'exceptSelf: the sender must not get it');

    const sGot = once(s, 'ex:two');
    yGot = once(y, 'ex:two');
    const xQuiet = silent(x, 'ex:two');
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:broadcast',
      { rooms: ['team'], exceptRooms: ['muted'], event: 'ex:two', data: 'room-excluded' }), 2);
    assert.deepStrictEqual(await Promise.all([sGot, yGot]), ['room-excluded', 'room-excluded']);
    assert.strictEqual(await xQuiet, true, 'exceptRooms: a member of the excluded room must not get it');

    // Both exclusions together.
    yGot = once(y, 'ex:three');
    xGot = silent(x, 'ex:three');
    const sQuiet3 = silent(s, 'ex:three');
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:broadcast',
      { rooms: ['team'], exceptRooms: ['muted'], exceptSelf: true, event: 'ex:three', data: 3 }), 1);
    assert.deepStrictEqual(await yGot, 3);
    assert.deepStrictEqual([await xGot, await sQuiet3], [true, true]);
  } finally {
    closeAll(s, x, y);
  }
});

test('rooms: every socket is in room user:{userId}; a broadcast to user:X reaches each of X\'s sockets once and nobody else', async () => {
  const x1 = await client('multi-x');
  const x2 = await client('multi-x');
  const other = await client('multi-other');
  try {
    assert.deepStrictEqual(await x1.timeout(3000).emitWithAck('test:rooms'), ['user:multi-x']);
    assert.deepStrictEqual(await x2.timeout(3000).emitWithAck('test:rooms'), ['user:multi-x']);
    assert.deepStrictEqual(await other.timeout(3000).emitWithAck('test:rooms'), ['user:multi-other']);

    const got1 = collectUntil(x1, 'to:user', 'to:end');
    const got2 = collectUntil(x2, 'to:user', 'to:end');
    const otherGot = [];
    other.on('to:user', (d) => otherGot.push(d));
    assert.deepStrictEqual(await other.timeout(3000).emitWithAck('test:broadcast',
      { rooms: ['user:multi-x'], event: 'to:user', data: { for: 'multi-x' } }), 2);
    await other.timeout(3000).emitWithAck('test:broadcast', { rooms: ['user:multi-x'], event: 'to:end', data: {} });
    assert.deepStrictEqual([await got1, await got2], [[{ for: 'multi-x' }], [{ for: 'multi-x' }]]);
    assert.deepStrictEqual(otherGot, []);
  } finally {
    closeAll(x1, x2, other);
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
