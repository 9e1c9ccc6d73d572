// recovery.test.js - connection state recovery as socket.io-client >= 4.6
// speaks it: the CONNECT answer carries a pid, every event an offset (its
// last argument); a client whose transport dropped comes back with
// {pid, offset} in its auth and gets the same socket id, its rooms and every
// event it missed, once, in order, before anything new, with
// socket.recovered true (and sock.recovered in the scripts' connected
// hooks); its user's presence does not flap. A session past its window or
// its log's bound, a pid never issued and another user's pid all get a
// plain new session. Real socket.io-client 4.8, real parley; "nothing else
// came" is always shown by a later event that must come after it.
'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  startParley, sioClient, connected, metric, waitFor, cleanup, recordEvents, untilLogged,
} = require('./harness');

// presence_grace_ms 0: a user whose last socket's disconnect hooks ran is
// told offline at once, so a flap would show at once too.
const confDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-recovery-conf-'));
const CONFIG = path.join(confDir, 'parley.conf.lua');
fs.writeFileSync(CONFIG, 'return { plugin_config = { chat = { presence_grace_ms = 0, sweep_ms = 50 } } }\n');

const servers = [];
async function start(env = {}) {
  const srv = await startParley({ env: { PARLEY_RECOVERY_WINDOW: '120000', PARLEY_CONFIG: CONFIG,
    PARLEY_PLUGINS: 'testkit,recoveryprobe', ...env } });
  servers.push(srv);
  return srv;
}
after(async () => {
  for (const srv of servers) {
    const st = await srv.stop();
    assert.equal(st.code, 0, `parley did not exit cleanly:\n${srv.logs()}`);
  }
  cleanup();
});

// A socket.io-client socket for `userId` that records every event it gets,
// in order, with its arguments as given (the offset last).
async function client(srv, userId, opts = {}) {
  const s = sioClient(srv, '/messages', { query: { userId }, transports: ['websocket'], ...opts });
  recordEvents(s);
  await connected(s);
  return s;
}

const until = untilLogged;

const request = (s, event, data) => s.timeout(5000).emitWithAck(event, data);
const join = (s, conv) => request(s, 'conversation:join', { conversationId: conv });
let seq = 0;
const send = (s, conv, content) => request(s, 'message:send',
  { conversationId: conv, clientMessageId: `m${++seq}`, type: 'text', content });

// Drops the transport as a network would (socket.io.engine.close()) and
// resolves once parley holds the socket for a recovery.
async function drop(srv, s, heldBefore = 0) {
  const gone = new Promise((resolve) => s.once('disconnect', resolve));
  s.io.engine.close();
  await gone;
  await waitFor(() => metric(srv, 'parley_recovery_held'), (v) => v === heldBefore + 1, 'the socket held');
}

// Connects again (with the pid and offset socket.io-client kept) and
// resolves once connected. (Its own reconnection is off: the test says
// when.)
function reconnect(s) {
  const done = connected(s);
  s.connect();
  return done;
}

const isOffset = (v) => typeof v === 'string' && /^[0-9]+$/.test(v);

async function dropMissReconnect(transports, parser) {
  const srv = await start();
  const conv = `rc-${transports[0]}${parser ? '-mp' : ''}`;
  const a = await client(srv, 'ra', { transports, ...(parser ? { parser } : {}) });
  const b = await client(srv, 'rb');
  await join(a, conv);
  await join(b, conv);
  // What came before the drop has come: the rest is what a misses.
  await until(a, (e) => e.event === 'user:online' && e.args[0].userId === 'rb');
  const id = a.id;
  assert.equal(a.recovered, false, 'a first connect is no recovery');
  assert.equal(typeof a._pid, 'string', 'the CONNECT answer carries a pid');
  const heard = await until(a, (e) => e.event === 'conversation:joined');
  assert.ok(isOffset(a.log[heard].args.at(-1)), `an event's last argument is its offset: ${JSON.stringify(a.log[heard].args)}`);

  await drop(srv, a);
  // What a misses: three messages, an event of several arguments with a
  // binary one, and a typing, while it is away.
  for (const content of ['one', 'two', 'three']) await send(b, conv, content);
  await b.timeout(5000).emitWithAck('test:broadcast-args', `conversation:${conv}`, 1, 'two',
    { three: 3 }, Buffer.from([0, 255, 4]));
  await request(b, 'typing:start', { conversationId: conv, isTyping: true });
  const seen = a.log.length;
  const bSeen = b.log.length;
  await reconnect(a);

  assert.equal(a.recovered, true, 'socket.recovered');
  assert.equal(a.id, id, 'the same socket id');
  // Something new, after the recovery: it comes after what was missed.
  await send(b, conv, 'four');
  const last = await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'four', seen);
  // (The chat list's conversation:updated that follow each message are
  // a's too, and checked for their offsets below; the order is shown on
  // the rest.)
  const all = a.log.slice(seen, last + 1);
  const after = all.filter((e) => e.event !== 'conversation:updated');
  assert.deepEqual(after.map((e) => e.event === 'message:received' ? e.args[0].content : e.event),
    ['one', 'two', 'three', 'test:broadcast-args', 'typing:start', 'probe:connected', 'four'],
    'every missed event once, in order, then the connected hook, then what is new');
  assert.deepEqual(after[5].args[0], { id, recovered: true }, 'the connected hook sees sock.recovered');
  assert.equal(after[4].args[0].userId, 'rb');
  // Every argument, the binary one included, then the offset.
  const [n1, s2, o3, bin, off] = after[3].args;
  assert.deepEqual([n1, s2, o3, [...bin], after[3].args.length], [1, 'two', { three: 3 }, [0, 255, 4], 5]);
  assert.ok(isOffset(off));
  const offsets = all.map((e) => e.args.at(-1));
  assert.ok(offsets.every(isOffset), `every event carries an offset: ${JSON.stringify(offsets)}`);
  for (let i = 1; i < offsets.length; i++) assert.ok(BigInt(offsets[i]) > BigInt(offsets[i - 1]), `offsets increase: ${offsets}`);
  // Its rooms came back with it.
  assert.deepEqual((await request(a, 'test:rooms', {})).sort(),
    ['user:ra', `conversation:${conv}`].sort());
  // No flap: b heard no user:offline nor user:online of ra, by the time
  // its own copy of "four" came.
  const bLast = await until(b, (e) => e.event === 'message:received' && e.args[0].content === 'four', bSeen);
  const presence = b.log.slice(bSeen, bLast).filter((e) => e.event.startsWith('user:'));
  assert.deepEqual(presence, [], 'presence flapped across a recovered drop');
  assert.equal(await metric(srv, 'parley_recovery_total{result="recovered"}'), 1);
  assert.equal(await metric(srv, 'parley_recovery_held'), 0);
  a.disconnect();
  b.disconnect();
}

test('a dropped WebSocket comes back with its socket id, its rooms and every event it missed, once, in order, before anything new; no presence flap', async () => {
  await dropMissReconnect(['websocket']);
});

test('the same over long-polling', async () => {
  await dropMissReconnect(['polling']);
});

test('the same for a socket.io-msgpack-parser client, beside JSON ones', async () => {
  await dropMissReconnect(['websocket'], require('socket.io-msgpack-parser'));
});

test('while held: a broadcast to several of its rooms comes back once; an excepted room or socket is honoured; a direct emit comes back; a room left keeps its events from before, a room joined gives those from after', async () => {
  const srv = await start();
  const a = await client(srv, 'xa');
  const b = await client(srv, 'xb');
  for (const room of ['x1', 'x2', 'x3']) await request(a, 'test:join', { room });
  const id = a.id;
  await drop(srv, a);
  const cast = (data) => b.timeout(5000).emitWithAck('test:broadcast', data);
  const toA = (data) => b.timeout(5000).emitWithAck('test:to-socket', { id, ...data });
  // (A held socket is still in its rooms: the count says whom the walk reached.)
  assert.equal(await cast({ rooms: ['x1', 'x2'], event: 't:both', data: 1 }), 1);
  assert.equal(await cast({ rooms: ['x1'], exceptRooms: ['x3'], event: 't:except-room', data: 2 }), 0);
  assert.equal(await cast({ rooms: ['x2'], exceptSockets: [id], event: 't:except-socket', data: 3 }), 0);
  assert.equal(await toA({ event: 't:direct', data: 4 }), true);
  assert.equal(await cast({ rooms: ['x1'], event: 't:before-leave', data: 5 }), 1);
  assert.equal(await toA({ leave: 'x1' }), true);
  assert.equal(await cast({ rooms: ['x1'], event: 't:after-leave', data: 6 }), 0);
  assert.equal(await cast({ rooms: ['x5'], event: 't:before-join', data: 7 }), 0);
  assert.equal(await toA({ join: 'x5' }), true);
  assert.equal(await cast({ rooms: ['x5', 'x2'], event: 't:after-join', data: 8 }), 1);
  const seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, true);
  const probe = await until(a, (e) => e.event === 'probe:connected', seen);
  assert.deepEqual(a.log.slice(seen, probe).map((e) => [e.event, e.args[0]]),
    [['t:both', 1], ['t:direct', 4], ['t:before-leave', 5], ['t:after-join', 8]],
    'what the broadcasts chose while it was held, once each, in order');
  assert.deepEqual((await request(a, 'test:rooms', {})).sort(), ['user:xa', 'x2', 'x3', 'x5'].sort());
  a.disconnect();
  b.disconnect();
});

test('evicted from a conversation while held: it gets back the messages from before and the conversation:left, none from after, and not the room', async () => {
  const KEY = 'recovery-test-key';
  const srv = await start({ PARLEY_API_KEY: KEY });
  const members = (list) => fetch(`${srv.url}/api/conversations/rc-evict/members`, { method: 'PUT',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ members: list }) });
  assert.equal((await members(['ea', 'eb'])).status, 200);
  const a = await client(srv, 'ea');
  const b = await client(srv, 'eb');
  await join(a, 'rc-evict');
  await join(b, 'rc-evict');
  await until(a, (e) => e.event === 'conversation:joined');
  await drop(srv, a);
  await send(b, 'rc-evict', 'while a member');
  assert.equal((await members(['eb'])).status, 200);
  await send(b, 'rc-evict', 'after the eviction');
  const seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, true);
  const probe = await until(a, (e) => e.event === 'probe:connected', seen);
  const got = a.log.slice(seen, probe).filter((e) => e.event !== 'conversation:updated')
    .map((e) => e.event === 'message:received' ? e.args[0].content : e.event);
  assert.deepEqual(got, ['while a member', 'conversation:left'],
    'the events of its time in the conversation, then its eviction, nothing after');
  assert.deepEqual(await request(a, 'test:rooms', {}), ['user:ea']);
  a.disconnect();
  b.disconnect();
});

test('the log is the server\'s: other rooms\' traffic past its bound does not end a held session, nor keep it from what it missed; an event it missed that the log dropped does, and it comes back as a new session', async () => {
  const srv = await start({ PARLEY_RECOVERY_MAX_EVENTS: '4' });
  const a = await client(srv, 'ga');
  const b = await client(srv, 'gb');
  await request(a, 'test:join', { room: 'g1' });
  await request(b, 'test:join', { room: 'g2' });
  const cast = (room, data) => b.timeout(5000).emitWithAck('test:broadcast', { rooms: [room], event: 't:cast', data });
  await cast('g1', 0);
  await until(a, (e) => e.event === 't:cast');
  // Nothing for a while it is away: it recovers, though the log moved on.
  await drop(srv, a);
  for (let i = 1; i <= 6; i++) await cast('g2', i);
  let seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, true, 'recovered: it missed nothing');
  let probe = await until(a, (e) => e.event === 'probe:connected', seen);
  assert.deepEqual(a.log.slice(seen, probe).map((e) => e.event), []);
  // The log moves past its last event, then it drops and misses one: what
  // went elsewhere between its last event and the drop was never its, so it
  // recovers the one it missed.
  for (let i = 1; i <= 6; i++) await cast('g2', 100 + i);
  await drop(srv, a);
  await cast('g1', 'missed');
  seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, true, 'recovered, though the log no longer holds its last event');
  probe = await until(a, (e) => e.event === 'probe:connected', seen);
  assert.deepEqual(a.log.slice(seen, probe).map((e) => [e.event, e.args[0]]), [['t:cast', 'missed']]);
  // Now it misses one, and the log drops it: the session ends.
  await drop(srv, a);
  await cast('g1', 7);
  for (let i = 8; i <= 13; i++) await cast('g2', i);
  assert.equal(await metric(srv, 'parley_recovery_held'), 1, 'a dropped event it never got does not end it by itself');
  await cast('g1', 14);
  await waitFor(() => metric(srv, 'parley_recovery_held'), (v) => v === 0, 'the session ended');
  seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, false, 'never a partial replay');
  probe = await until(a, (e) => e.event === 'probe:connected', seen);
  assert.deepEqual(a.log.slice(seen, probe).map((e) => e.event), []);
  assert.ok(await metric(srv, 'parley_limits_total{limit="recovery_max_events"}') >= 1);
  a.disconnect();
  b.disconnect();
});

test('a session past PARLEY_RECOVERY_WINDOW is ended as a disconnect; coming back gets a new session (recovered false), not its rooms', async () => {
  const srv = await start({ PARLEY_RECOVERY_WINDOW: '200' });
  const a = await client(srv, 'wa');
  const b = await client(srv, 'wb');
  await join(a, 'rc-window');
  await join(b, 'rc-window');
  const id = a.id;
  await drop(srv, a);
  await send(b, 'rc-window', 'missed');
  await waitFor(() => metric(srv, 'parley_recovery_total{result="expired"}'), (v) => v === 1, 'the window passed');
  // Its disconnect hooks ran when it ended: wa went offline.
  await until(b, (e) => e.event === 'user:offline' && e.args[0].userId === 'wa');
  const seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id, 'a new socket id');
  const probe = await until(a, (e) => e.event === 'probe:connected', seen);
  assert.deepEqual(a.log.slice(seen, probe).map((e) => e.event), [], 'nothing of the old session was replayed');
  assert.equal(a.log[probe].args[0].recovered, false);
  assert.deepEqual(await request(a, 'test:rooms', {}), ['user:wa']);
  assert.equal(await metric(srv, 'parley_recovery_total{result="unknown_pid"}'), 1);
  a.disconnect();
  b.disconnect();
});

test('a held session that misses more than PARLEY_RECOVERY_MAX_EVENTS ends; coming back gets a new session and none of the missed events (never a partial replay)', async () => {
  const srv = await start({ PARLEY_RECOVERY_MAX_EVENTS: '3' });
  const a = await client(srv, 'oa');
  const b = await client(srv, 'ob');
  await join(a, 'rc-bound');
  await join(b, 'rc-bound');
  const id = a.id;
  await drop(srv, a);
  for (let i = 1; i <= 5; i++) await send(b, 'rc-bound', `m${i}`);
  await waitFor(() => metric(srv, 'parley_limits_total{limit="recovery_max_events"}'), (v) => v >= 1, 'the bound counted');
  await waitFor(() => metric(srv, 'parley_recovery_held'), (v) => v === 0, 'the session ended');
  const seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id);
  await join(a, 'rc-bound');
  await send(b, 'rc-bound', 'after');
  const last = await until(a, (e) => e.event === 'message:received' && e.args[0].content === 'after', seen);
  const got = a.log.slice(seen, last).filter((e) => e.event === 'message:received');
  assert.deepEqual(got, [], 'a partial replay');
  a.disconnect();
  b.disconnect();
});

test('an offset the log no longer holds gets a new session, and the held one ends', async () => {
  const srv = await start();
  const a = await client(srv, 'la');
  await join(a, 'rc-offset');
  const id = a.id;
  await drop(srv, a);
  a._lastOffset = '999999999'; // an event it never had
  await reconnect(a);
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id);
  assert.equal(await metric(srv, 'parley_recovery_total{result="log_lost"}'), 1);
  await waitFor(() => metric(srv, 'parley_recovery_held'), (v) => v === 0, 'the old session ended');
  // An offset that is not all digits names no event, even when its digits
  // would name the last one.
  await join(a, 'rc-offset');
  await until(a, (e) => e.event === 'conversation:joined');
  const id2 = a.id;
  await drop(srv, a);
  a._lastOffset = `x${a._lastOffset}`;
  await reconnect(a);
  assert.equal(a.recovered, false);
  assert.notEqual(a.id, id2);
  assert.equal(await metric(srv, 'parley_recovery_total{result="log_lost"}'), 2);
  a.disconnect();
});

test('bad input: a pid never issued gets a plain new session, counted', async () => {
  const srv = await start();
  const m = await client(srv, 'fm', { auth: { pid: 'AAAAAAAAAAAAAAAAAAAA', offset: '1' } });
  assert.equal(m.recovered, false);
  const probe = await until(m, (e) => e.event === 'probe:connected');
  assert.equal(m.log[probe].args[0].recovered, false);
  assert.deepEqual(await request(m, 'test:rooms', {}), ['user:fm']);
  assert.equal(await metric(srv, 'parley_recovery_total{result="unknown_pid"}'), 1);
  // Not a string, or too long: no recovery either, and the socket works.
  const n = await client(srv, 'fn', { auth: { pid: 12, offset: {} } });
  const o = await client(srv, 'fo', { auth: { pid: 'x'.repeat(5000), offset: '1' } });
  assert.equal(n.recovered || o.recovered, false);
  assert.equal(await metric(srv, 'parley_recovery_total{result="recovered"}'), 0);
  assert.match(srv.logs(), /recovery refused: a pid that names no socket held/);
  m.disconnect();
  n.disconnect();
  o.disconnect();
});

test('bad input: another user\'s pid gets a plain new session, never that user\'s id, rooms or events; the owner can still recover', async () => {
  const srv = await start();
  const a = await client(srv, 'va');
  const b = await client(srv, 'vb');
  await join(a, 'rc-victim');
  await join(b, 'rc-victim');
  const id = a.id;
  await drop(srv, a);
  await send(b, 'rc-victim', 'for va only');
  const m = await client(srv, 'vm', { auth: { pid: a._pid, offset: a._lastOffset } });
  assert.equal(m.recovered, false);
  assert.notEqual(m.id, id);
  assert.deepEqual(await request(m, 'test:rooms', {}), ['user:vm']);
  // Whatever m could have been handed came before its own echo.
  await request(m, 'test:bounce', 'mark');
  const mark = await until(m, (e) => e.event === 'test:bounced');
  assert.deepEqual(m.log.slice(0, mark).map((e) => e.event), ['probe:connected']);
  assert.equal(await metric(srv, 'parley_recovery_total{result="other_user"}'), 1);
  assert.match(srv.logs(), /recovery refused: the pid is another user's socket/);
  // The session was left alone: its own user takes it back.
  const seen = a.log.length;
  await reconnect(a);
  assert.equal(a.recovered, true);
  assert.equal(a.id, id);
  const got = await until(a, (e) => e.event === 'message:received', seen);
  assert.equal(a.log[got].args[0].content, 'for va only');
  a.disconnect();
  b.disconnect();
  m.disconnect();
});

test('PARLEY_RECOVERY_WINDOW is on by default (120 s); 0 turns it off: no pid, no offset', async () => {
  const on = await start({ PARLEY_RECOVERY_WINDOW: undefined });
  const a = await client(on, 'da');
  assert.equal(typeof a._pid, 'string');
  await join(a, 'rc-default');
  const i = await until(a, (e) => e.event === 'conversation:joined');
  assert.ok(isOffset(a.log[i].args.at(-1)));
  // Left held: the server's stop ends it (after(): exit 0, and no leak
  // under ASan).
  await drop(on, a);
  const off = await start({ PARLEY_RECOVERY_WINDOW: '0' });
  const b = await client(off, 'db');
  assert.equal(b._pid, undefined);
  await join(b, 'rc-default');
  const k = await until(b, (e) => e.event === 'conversation:joined');
  assert.equal(b.log[k].args.length, 1, 'no offset');
  b.disconnect();
});
