// socketio.test.js - socket.io-client 4.x against the real parley binary on
// loopback: the seed's client example verbatim, each transport, acks both
// ways, binary attachments, namespaces multiplexed on one connection, auth
// refusals, reconnection across a server restart, server-side disconnects
// and the `error` event. Server behaviour comes from the default scripts
// plus tests/plugins/testkit.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { io, Manager } = require('socket.io-client');
const { startParley, sioClient, connected, once, silent } = require('./harness');

let srv;

before(async () => { srv = await startParley(); });
after(async () => {
  const st = await srv.stop();
  assert.deepStrictEqual({ code: st.code }, { code: 0 }, `parley did not exit cleanly:\n${srv.logs()}`);
});

// Connects a /messages (or nsp) socket as userId and resolves once connected.
async function client(userId, opts = {}, nsp = '/messages') {
  const s = sioClient(srv, nsp, { query: { userId }, ...opts });
  return connected(s);
}

// Closes every socket and its Manager (the engine connection), whatever the
// test's outcome.
function closeAll(...sockets) {
  for (const s of sockets) {
    if (!s) continue;
    s.disconnect();
    s.io.disconnect();
  }
}

// The transport name once any polling->websocket upgrade has finished.
async function upgradedTransport(socket) {
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') await once(engine, 'upgrade', 5000);
  return engine.transport.name;
}

// Runs first: io() caches one Manager per host, and this test needs a fresh one.
test('io() without forceNew multiplexes /messages and /admin over one engine (same engine id)', async () => {
  const opts = { reconnection: false, transports: ['websocket'], auth: { userId: 'mux' } };
  const a = io(`${srv.url}/messages`, opts);
  const b = io(`${srv.url}/admin`, opts);
  try {
    await Promise.all([once(a, 'connect', 5000), once(b, 'connect', 5000)]);
    assert.strictEqual(a.io, b.io, 'io() should reuse the cached Manager');
    assert.strictEqual(a.io.engine.id, b.io.engine.id);
    const [wa, wb] = await Promise.all([a.timeout(3000).emitWithAck('test:whoami'), b.timeout(3000).emitWithAck('test:whoami')]);
    assert.deepStrictEqual([wa.namespace, wb.namespace], ['/messages', '/admin']);
  } finally {
    closeAll(a, b);
  }
});

test('seed client example as written (default transports) connects, upgrades polling->websocket, and gets conversation:joined', async () => {
  // Exactly the seed's example: no transports, no forceNew, reconnection on.
  const socket = io(`${srv.url}/messages`, { query: { userId: 'user-123' } });
  try {
    const joined = once(socket, 'conversation:joined', 5000);
    // The example emits before 'connect': the client buffers it.
    socket.emit('conversation:join', { conversationId: 'conversation-123' });
    await once(socket, 'connect', 5000);
    assert.deepStrictEqual(await joined, { conversationId: 'conversation-123', success: true });
    assert.strictEqual(await upgradedTransport(socket), 'websocket');
    // Still usable after the upgrade.
    const again = once(socket, 'conversation:joined');
    socket.emit('conversation:join', { conversationId: 'conversation-456' });
    assert.deepStrictEqual(await again, { conversationId: 'conversation-456', success: true });
    assert.strictEqual(socket.io.engine.transport.name, 'websocket');
  } finally {
    closeAll(socket);
  }
});

for (const [name, opts] of [
  ['websocket', { transports: ['websocket'] }],
  ['polling', { transports: ['polling'], upgrade: false }],
]) {
  test(`${name}-only client connects, exchanges events and acks, and stays on ${name}`, async () => {
    const s = await client(`only-${name}`, opts);
    try {
      assert.strictEqual(s.io.engine.transport.name, name);
      const who = await s.timeout(3000).emitWithAck('test:whoami');
      assert.deepStrictEqual({ transport: who.transport, userId: who.userId, namespace: who.namespace },
        { transport: name, userId: `only-${name}`, namespace: '/messages' });
      assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', { n: 1, via: name }), { n: 1, via: name });
      const joined = once(s, 'conversation:joined');
      const ack = await s.timeout(3000).emitWithAck('conversation:join', { conversationId: `c-${name}` });
      assert.deepStrictEqual(ack, { conversationId: `c-${name}`, success: true });
      assert.deepStrictEqual(await joined, { conversationId: `c-${name}`, success: true });
      // Several round trips in a row, then the transport is still the chosen one.
      for (let i = 0; i < 5; i++) {
        assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', i), i);
      }
      assert.strictEqual(s.io.engine.transport.name, name);
    } finally {
      closeAll(s);
    }
  });
}

test('client->server ack returns the payload deep-equal: nested objects, unicode, ~100KB string', async () => {
  const s = await client('acker', { transports: ['websocket'] });
  try {
    const payload = {
      nested: { a: { b: { c: [1, 2, { d: 'deep' }] } }, flag: true, off: false, nothing: null },
      numbers: [0, -1, 42, 3.5, -0.25, 1e21, 1700000000000],
      unicode: 'héllo wörld — 你好 — مرحبا — 🎉👩‍👩‍👧 — \u2028\u2029',
      escapes: 'quote " backslash \\ slash / newline \n tab \t ctrl \u0001',
      big: 'x'.repeat(50000) + '€'.repeat(16000) + 'end',
    };
    assert.deepStrictEqual(await s.timeout(5000).emitWithAck('test:echo', payload), payload);
    // Scalars as the whole payload, too.
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 'just a string'), 'just a string');
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 7), 7);
  } finally {
    closeAll(s);
  }
});

test('client->server ack preserves JSON exactly: empty arrays stay [] and numbers keep full double precision', async () => {
  const s = await client('fidelity', { transports: ['websocket'] });
  try {
    const payload = {
      emptyArray: [],
      emptyObject: {},
      nestedEmpty: { list: [], matrix: [[], [1]] },
      maxSafe: Number.MAX_SAFE_INTEGER, // 9007199254740991
      sum: 0.1 + 0.2,                   // 0.30000000000000004
      pi: Math.PI,
      tiny: 5e-324,
    };
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', payload), payload);
  } finally {
    closeAll(s);
  }
});

test('server->client ack (test:ask): the client callback\'s arguments come back in test:answer', async () => {
  const s = await client('asked', { transports: ['websocket'] });
  try {
    s.on('question', (data, cb) => cb({ got: data, ok: true }, 'second'));
    const answer = once(s, 'test:answer');
    await s.timeout(3000).emitWithAck('test:ask', { event: 'question', data: { q: 'ping', n: 3 }, timeout: 2000 });
    assert.deepStrictEqual(await answer, {
      error: null,
      args: [{ got: { q: 'ping', n: 3 }, ok: true }, 'second'],
    });
  } finally {
    closeAll(s);
  }
});

test('a namespace with "[" in it: a server->client ack id comes after the namespace, and the answer, a plain ack and a server disconnect reach the right socket', async () => {
  const s = await client('bracket', { transports: ['websocket'] }, '/ns[x');
  try {
    s.on('question', (data, cb) => cb({ got: data }));
    const answer = once(s, 'test:answer');
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', { n: 1 }), { n: 1 });
    await s.timeout(3000).emitWithAck('test:ask', { event: 'question', data: 'in [x', timeout: 2000 });
    assert.deepStrictEqual(await answer, { error: null, args: [{ got: 'in [x' }] });
    const gone = once(s, 'disconnect');
    s.emit('test:disconnect-me');
    assert.strictEqual(await gone, 'io server disconnect');
  } finally {
    closeAll(s);
  }
});

test('server->client ack that the client never answers ends with test:answer error "timeout"', async () => {
  const s = await client('mute', { transports: ['websocket'] });
  try {
    let asked = null;
    s.on('unanswered', (data) => { asked = data; }); // takes the callback, never calls it
    const answer = once(s, 'test:answer', 3000);
    await s.timeout(3000).emitWithAck('test:ask', { event: 'unanswered', data: { q: 'hello?' }, timeout: 300 });
    const got = await answer;
    assert.strictEqual(got.error, 'timeout', `expected error "timeout", got ${JSON.stringify(got)}`);
    assert.deepStrictEqual(asked, { q: 'hello?' });
    // The socket is still fine afterwards.
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 'after'), 'after');
  } finally {
    closeAll(s);
  }
});

for (const [name, opts] of [
  ['websocket', { transports: ['websocket'] }],
  ['polling', { transports: ['polling'], upgrade: false }],
]) {
  test(`binary attachments round-trip byte-exact over ${name} (BINARY_EVENT in, BINARY_ACK and BINARY_EVENT out)`, async () => {
    const s = await client(`bin-${name}`, opts);
    try {
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i)); // every byte value
      const file = Buffer.concat([all, crypto.randomBytes(64 * 1024)]);
      const a = crypto.randomBytes(17);
      const b = Buffer.alloc(0);
      const sent = { name: 'photo.jpg', file, nested: [a, { inner: all }, b] };
      const back = await s.timeout(5000).emitWithAck('test:echo', sent);
      assert.strictEqual(Buffer.isBuffer(back.file), true, `file should come back as a Buffer, got ${typeof back.file}`);
      assert.deepStrictEqual(back.name, 'photo.jpg');
      assert.deepStrictEqual(Buffer.from(back.file), file);
      assert.deepStrictEqual(Buffer.from(back.nested[0]), a);
      assert.deepStrictEqual(Buffer.from(back.nested[1].inner), all);
      assert.deepStrictEqual(Buffer.from(back.nested[2]), b);

      // test:bounce sends the payload back as a plain (binary) event.
      const raw = crypto.randomBytes(1000);
      const bounced = once(s, 'test:bounced', 5000);
      await s.timeout(5000).emitWithAck('test:bounce', raw);
      const got = await bounced;
      assert.strictEqual(Buffer.isBuffer(got), true, `test:bounced should carry a Buffer, got ${typeof got}`);
      assert.deepStrictEqual(Buffer.from(got), raw);

      const bouncedObj = once(s, 'test:bounced', 5000);
      await s.timeout(5000).emitWithAck('test:bounce', { label: 'two', parts: [a, raw] });
      const gotObj = await bouncedObj;
      assert.deepStrictEqual(gotObj.label, 'two');
      assert.deepStrictEqual([Buffer.from(gotObj.parts[0]), Buffer.from(gotObj.parts[1])], [a, raw]);
      assert.strictEqual(s.io.engine.transport.name, name);
    } finally {
      closeAll(s);
    }
  });
}

test('two namespaces share one engine connection; each socket is in its own namespace; closing one leaves the other working', async () => {
  const m = new Manager(srv.url, { autoConnect: false, reconnection: false, transports: ['websocket'] });
  const msg = m.socket('/messages', { auth: { userId: 'multi' } });
  const adm = m.socket('/admin', { auth: { userId: 'multi' } });
  try {
    await Promise.all([connected(msg), connected(adm)]);
    assert.strictEqual(msg.io.engine.id, adm.io.engine.id);
    assert.notStrictEqual(msg.io.engine.id, undefined);
    const [wm, wa] = await Promise.all([
      msg.timeout(3000).emitWithAck('test:whoami'),
      adm.timeout(3000).emitWithAck('test:whoami'),
    ]);
    assert.deepStrictEqual({ nsp: wm.namespace, userId: wm.userId }, { nsp: '/messages', userId: 'multi' });
    assert.deepStrictEqual({ nsp: wa.namespace, userId: wa.userId }, { nsp: '/admin', userId: 'multi' });
    assert.notStrictEqual(wm.id, wa.id);
    // The ids the client learned from CONNECT are the server's socket ids.
    assert.deepStrictEqual([msg.id, adm.id], [wm.id, wa.id]);

    const admDisconnected = silent(adm, 'disconnect', 300);
    msg.disconnect();
    assert.strictEqual(await admDisconnected, true, '/admin socket must not be disconnected when /messages leaves');
    assert.strictEqual(adm.connected, true);
    assert.strictEqual(m.engine.readyState, 'open');
    const after = await adm.timeout(3000).emitWithAck('test:whoami');
    assert.deepStrictEqual({ nsp: after.namespace, id: after.id }, { nsp: '/admin', id: wa.id });
  } finally {
    closeAll(msg, adm);
    m.disconnect();
  }
});

test('unknown namespace /nope is refused with connect_error "Invalid namespace"', async () => {
  const s = sioClient(srv, '/nope', { auth: { userId: 'lost' } });
  try {
    const err = await connected(s).then(() => null, (e) => e);
    assert.ok(err, 'connecting to /nope should fail');
    assert.strictEqual(err.message, 'Invalid namespace');
    assert.strictEqual(s.connected, false);
  } finally {
    closeAll(s);
  }
});

test('auth: no userId, or one with a NUL in it, is refused with connect_error data.statusCode 401; the socket does not connect', async () => {
  // (The core keeps a user id as a C string: "bob\0x" would be taken for "bob".)
  for (const opts of [{}, { transports: ['websocket'] }, { query: { userId: '' } },
    { auth: { userId: 'bob\u0000x' } }, { auth: { userId: 'bob\u0000x' }, transports: ['websocket'] }]) {
    const s = sioClient(srv, '/messages', opts);
    try {
      const err = await connected(s).then(() => null, (e) => e);
      assert.ok(err, `connecting without a userId (${JSON.stringify(opts)}) should fail`);
      assert.deepStrictEqual(err.data, { statusCode: 401 });
      assert.match(err.message, /userId|unauthori/i);
      assert.strictEqual(s.connected, false);
    } finally {
      closeAll(s);
    }
  }
});

test('auth: userId from the auth payload or the query identifies the socket (test:whoami)', async () => {
  const viaAuth = sioClient(srv, '/messages', { auth: { userId: 'alice', name: 'Alice A.' } });
  const viaQuery = sioClient(srv, '/messages', { query: { userId: 'bob' }, transports: ['websocket'] });
  try {
    await Promise.all([connected(viaAuth), connected(viaQuery)]);
    const [a, b] = await Promise.all([
      viaAuth.timeout(3000).emitWithAck('test:whoami'),
      viaQuery.timeout(3000).emitWithAck('test:whoami'),
    ]);
    assert.deepStrictEqual({ userId: a.userId, user: { id: a.user.id, name: a.user.name } },
      { userId: 'alice', user: { id: 'alice', name: 'Alice A.' } });
    assert.deepStrictEqual({ userId: b.userId, id: b.id }, { userId: 'bob', id: viaQuery.id });
    // The handshake is not kept on the socket after connect: it is rebuilt
    // from the core when a handler reads it, and says the same.
    assert.deepStrictEqual(a.handshake.auth, { userId: 'alice', name: 'Alice A.' });
    assert.strictEqual(b.handshake.query.userId, 'bob');
    assert.strictEqual(b.handshake.query.transport, 'websocket');
    assert.match(b.handshake.address, /^127\.0\.0\.1$|^::ffff:127\.0\.0\.1$/);
  } finally {
    closeAll(viaAuth, viaQuery);
  }
});

test('a query parameter of 1,000 characters before EIO= (socket.io-client puts custom query first) does not hide EIO or transport', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const s = sioClient(srv, '/messages', { transports, query: { note: 'n'.repeat(1000), userId: 'long-query' } });
    try {
      await connected(s);
      const who = await s.timeout(3000).emitWithAck('test:whoami');
      assert.equal(who.handshake.query.note.length, 1000, `${transports}`);
    } finally {
      closeAll(s);
    }
  }
});

test('reconnection: after parley restarts on the same port the client reconnects by itself and can emit again', async () => {
  let first = await startParley();
  const { port } = first;
  let second = null;
  const s = io(first.url + '/messages', {
    forceNew: true, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200,
    randomizationFactor: 0, transports: ['websocket'], query: { userId: 'phoenix' },
  });
  try {
    await once(s, 'connect', 5000);
    const firstId = s.id;
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 'before'), 'before');

    const dropped = once(s, 'disconnect', 5000);
    const st = await first.stop();
    assert.deepStrictEqual({ code: st.code }, { code: 0 }, `first parley did not exit cleanly:\n${first.logs()}`);
    first = null;
    const reason = await dropped;
    assert.notStrictEqual(reason, 'io server disconnect',
      'a server shutdown must not look like a deliberate kick (the client would not reconnect)');

    const reconnected = once(s, 'connect', 10000);
    second = await startParley({ port });
    await reconnected;
    assert.strictEqual(s.connected, true);
    assert.notStrictEqual(s.id, firstId);
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 'after'), 'after');
    const who = await s.timeout(3000).emitWithAck('test:whoami');
    assert.strictEqual(who.userId, 'phoenix');
  } finally {
    s.io.reconnection(false);
    closeAll(s);
    if (first) await first.stop();
    if (second) {
      const st2 = await second.stop();
      assert.deepStrictEqual({ code: st2.code }, { code: 0 }, `second parley did not exit cleanly:\n${second.logs()}`);
    }
  }
});

test('server-initiated disconnect (test:disconnect-me) gives the client "io server disconnect"; others stay connected', async () => {
  const bystander = await client('stays', { transports: ['websocket'] });
  const s = await client('kicked', { transports: ['websocket'] });
  try {
    const gone = once(s, 'disconnect', 3000);
    s.emit('test:disconnect-me');
    assert.strictEqual(await gone, 'io server disconnect');
    assert.strictEqual(s.connected, false);
    assert.deepStrictEqual(await bystander.timeout(3000).emitWithAck('test:echo', 'still here'), 'still here');
  } finally {
    closeAll(s, bystander);
  }
});

for (const [name, opts] of [
  ['websocket', { transports: ['websocket'] }],
  ['polling', { transports: ['polling'], upgrade: false }],
]) {
  test(`server-initiated disconnect of /messages keeps /admin on the same ${name} connection working`, async () => {
    const m = new Manager(srv.url, { autoConnect: false, reconnection: false, ...opts });
    const msg = m.socket('/messages', { auth: { userId: 'half' } });
    const adm = m.socket('/admin', { auth: { userId: 'half' } });
    try {
      await Promise.all([connected(msg), connected(adm)]);
      const gone = once(msg, 'disconnect', 3000);
      const admQuiet = silent(adm, 'disconnect', 500);
      msg.emit('test:disconnect-me');
      assert.strictEqual(await gone, 'io server disconnect');
      assert.strictEqual(await admQuiet, true, '/admin must stay connected');
      assert.strictEqual(adm.connected, true);
      assert.deepStrictEqual(await adm.timeout(3000).emitWithAck('test:echo', 'admin ok'), 'admin ok');
    } finally {
      closeAll(msg, adm);
      m.disconnect();
    }
  });
}

test('a handler whose result has no JSON form: the ack is a 500 error and the error event comes; others go on', async () => {
  const bystander = await client('bystander2', { transports: ['websocket'] });
  const s = await client('bad-result', { transports: ['websocket'] });
  try {
    const errorEvent = once(s, 'error', 3000);
    const ack = await s.timeout(3000).emitWithAck('test:bad-result', {});
    assert.deepStrictEqual({ status: ack.status, statusCode: ack.statusCode },
      { status: 'error', statusCode: 500 }, JSON.stringify(ack));
    assert.deepStrictEqual(await errorEvent, ack);
    assert.strictEqual(s.connected, true);
    assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 'ok'), 'ok');
    assert.deepStrictEqual(await bystander.timeout(3000).emitWithAck('test:echo', 'by'), 'by');
  } finally {
    closeAll(s, bystander);
  }
});

test('unknown event -> error event and ack {status:"error", statusCode:404}; test:fail -> 500; test:refuse -> 418; a bystander keeps working', async () => {
  const bystander = await client('bystander', { transports: ['websocket'] });
  const s = await client('clumsy', { transports: ['websocket'] });
  try {
    const cases = [
      ['no:such-event', 404, /no:such-event/],
      ['test:fail', 500, /./],
      ['test:refuse', 418, /^refused on purpose$/],
    ];
    for (const [event, statusCode, message] of cases) {
      const errorEvent = once(s, 'error', 3000);
      const ack = await s.timeout(3000).emitWithAck(event, { some: 'data' });
      const ev = await errorEvent;
      assert.deepStrictEqual({ status: ack.status, statusCode: ack.statusCode }, { status: 'error', statusCode },
        `${event}: ack ${JSON.stringify(ack)}`);
      assert.match(ack.message, message);
      assert.deepStrictEqual(ev, ack, `${event}: the error event and the ack should carry the same object`);
      // Without an ack the error event still comes.
      const errorOnly = once(s, 'error', 3000);
      s.emit(event, { some: 'data' });
      assert.deepStrictEqual(await errorOnly, ack);

      assert.strictEqual(s.connected, true, `${event} must not disconnect the sender`);
      assert.deepStrictEqual(await bystander.timeout(3000).emitWithAck('test:echo', event), event);
      assert.deepStrictEqual(await s.timeout(3000).emitWithAck('test:echo', 'ok'), 'ok');
    }
  } finally {
    closeAll(s, bystander);
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
