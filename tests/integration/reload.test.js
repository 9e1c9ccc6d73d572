// reload.test.js - atomic hot reload (STYLE.md 15): the scripts and plugins
// are compiled beside the ones in force and swapped in between loop
// iterations, on a file change or SIGHUP; a broken version is refused with
// its file and line and the old one keeps running. Under load: 200 clients
// in rooms of 10 keep talking while the plugin is reloaded 10 times (one
// broken): no disconnect, no lost or duplicated event or ack, the new
// version answering right after each good reload, and shared state carried
// over. A version whose load hook throws is refused the same way, the old
// one still running (timers too). And the default scripts reload while
// their state is live: typing and presence kept in parley.shared by
// scripts/chat.lua are finished by the new version.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');
const parley = require('../harness/parley-testing');

// A plugin whose every reply says which version answered.
function pluginSource(version, broken = false) {
  return `-- reloadable v${version}: written by tests/integration/reload.test.js
local said = parley.shared("said")
said.total = said.total or 0
return {
	events = {
		["rl:version"] = function()
			return { version = ${version}, total = said.total }
		end,
		["rl:say"] = function(sock, data)
			said.total = said.total + 1
			sock:to(data.room):emit("rl:heard", { from = sock.userId, n = data.n, version = ${version} })
			return { version = ${version} }
		end,
	},
}
${broken ? 'this is not lua (' : ''}
`;
}

function makeTree() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-reload-'));
  fs.cpSync(path.join(h.ROOT, 'scripts'), path.join(dir, 'scripts'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'plugins', 'reloadable'), { recursive: true });
  const file = path.join(dir, 'plugins', 'reloadable', 'init.lua');
  fs.writeFileSync(file, pluginSource(0));
  return { dir, file };
}

function envFor(dir, watch) {
  return {
    PARLEY_SCRIPTS: path.join(dir, 'scripts'),
    PARLEY_PLUGIN_PATH: `${path.join(dir, 'plugins')};${path.join(h.ROOT, 'tests', 'plugins')}`,
    PARLEY_PLUGINS: 'testkit,reloadable',
    PARLEY_WATCH: watch ? '1' : '0',
  };
}

async function versionOf(s) {
  return (await s.timeout(3000).emitWithAck('rl:version')).version;
}

// Polls `probe` until `ok(value)`; resolves with the value (a wait for a
// state the server reaches, not a fixed sleep).
async function until(probe, ok, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (last: ${JSON.stringify(v)})`);
    await h.sleep(10);
  }
}

test('with PARLEY_WATCH=0 a changed file is not picked up until SIGHUP', async () => {
  const { dir, file } = makeTree();
  const srv = await h.startParley({ env: envFor(dir, false) });
  const s = h.sioClient(srv, '/messages', { query: { userId: 'hup' }, transports: ['websocket'] });
  try {
    await h.connected(s);
    assert.equal(await versionOf(s), 0);
    const before = await h.scriptLoads(srv);
    fs.writeFileSync(file, pluginSource(1));
    // Nothing can announce that no reload came: this is the one window
    // left, and with the watch on a change is picked up well inside it.
    await h.sleep(500);
    assert.deepEqual(await h.scriptLoads(srv), before, 'reloaded without being asked');
    assert.equal(await versionOf(s), 0, 'reloaded without being asked');
    assert.equal(await h.reload(srv), 'ok');
    assert.equal(await versionOf(s), 1, 'the new version does not answer once its load is counted');
  } finally {
    s.close();
    assert.equal((await srv.stop()).code, 0);
  }
});

test('200 clients in rooms of 10 keep talking through 10 reloads (one broken): no disconnect, nothing lost, each new version answers at once, shared state carries over', { timeout: 120000 }, async () => {
  const { dir, file } = makeTree();
  const srv = await h.startParley({ env: envFor(dir, true) });
  const N = 200, ROOM = 10;
  const clients = [];
  let disconnects = 0;
  // "receiver<-from:n" -> how many times that receiver heard that message
  const heard = new Map();
  const said = []; // { from, n } of every rl:say sent (from: the client index)
  let sent = 0, acked = 0, ackErrors = 0;
  let talking = false;
  try {
    for (let i = 0; i < N; i += 20) {
      clients.push(...await Promise.all(Array.from({ length: 20 }, async (_, k) => {
        const s = h.sioClient(srv, '/messages', { query: { userId: `u${i + k}` }, transports: ['websocket'] });
        await h.connected(s);
        s.on('disconnect', () => { disconnects++; });
        s.on('rl:heard', (m) => {
          const key = `u${i + k}<-${m.from}:${m.n}`;
          heard.set(key, (heard.get(key) || 0) + 1);
        });
        await s.timeout(3000).emitWithAck('test:join', { room: `r${Math.floor((i + k) / ROOM)}` });
        return s;
      })));
    }
    // Every client says something every 100 ms (2,000 events/s in all).
    talking = true;
    const loops = clients.map(async (s, i) => {
      for (let n = 0; talking; n++) {
        sent++;
        said.push({ from: i, n });
        s.timeout(10000).emitWithAck('rl:say', { room: `r${Math.floor(i / ROOM)}`, n })
          .then((r) => { if (typeof r.version === 'number') acked++; else ackErrors++; },
            () => { ackErrors++; });
        await h.sleep(100);
      }
    });

    const observer = clients[0];
    for (let v = 1; v <= 10; v++) {
      // Between two reloads, every client is heard from again.
      const mark = acked;
      await until(() => acked, (n) => n >= mark + N, `${N} acks after version ${v - 1}`);
      const before = await h.scriptLoads(srv);
      if (v === 6) {
        // Broken: refused, logged with file and line; version 5 keeps going.
        fs.writeFileSync(file, pluginSource(v, true));
        srv.proc.kill('SIGHUP');
        assert.equal(await h.loaded(srv, before), 'refused');
        assert.equal(await versionOf(observer), 5, 'a broken version was swapped in');
        assert.match(srv.logs(), /scripts not loaded: .*reloadable\/init\.lua:\d+:/);
        continue;
      }
      fs.writeFileSync(file, pluginSource(v));
      if (v % 2 === 0) srv.proc.kill('SIGHUP'); // the others by the file watch alone
      assert.equal(await h.loaded(srv, before), 'ok', `version ${v}`);
      // Swapped in between two loop iterations: it answers at once.
      assert.equal(await versionOf(observer), v, `version ${v} does not answer once its load is counted`);
    }
    talking = false;
    await Promise.all(loops);
    await until(() => acked + ackErrors, (n) => n >= sent, 'an answer to every event', 15000);
    // The last relays: every member of each room heard each message.
    const deliveries = () => [...heard.values()].reduce((a, b) => a + b, 0);
    const relayed = Date.now() + 15000;
    while (deliveries() < sent * (ROOM - 1) && Date.now() < relayed) await h.sleep(10);
    assert.equal(disconnects, 0, 'a client was disconnected');
    assert.equal(ackErrors, 0, 'an event failed or timed out');
    assert.equal(acked, sent, 'an ack was lost');
    // Each message exactly once at each other member of its room: counted
    // per receiver, so a duplicate somewhere cannot hide a loss elsewhere.
    let lost = 0, duplicated = 0, expected = 0;
    const missing = [];
    for (const { from, n } of said) {
      const first = Math.floor(from / ROOM) * ROOM;
      for (let r = first; r < first + ROOM; r++) {
        if (r === from) continue;
        expected++;
        const count = heard.get(`u${r}<-u${from}:${n}`) || 0;
        if (count === 0) {
          lost++;
          if (missing.length < 5) missing.push(`u${r} did not hear u${from}:${n}`);
        }
        if (count > 1) duplicated += count - 1;
      }
    }
    assert.equal(lost, 0, `${lost} deliveries lost: ${missing.join('; ')}`);
    assert.equal(duplicated, 0, `${duplicated} deliveries duplicated`);
    assert.equal(heard.size, expected, 'a client heard a message not meant for it');
    const status = await observer.timeout(3000).emitWithAck('rl:version');
    assert.equal(status.total, sent, 'the shared counter did not survive the reloads');
    console.log(`# reload: ${sent} events through 9 reloads and a refused one`);
  } finally {
    talking = false; // a failed assertion must not leave the talkers looping
    clients.forEach((s) => s.close());
    assert.equal((await srv.stop()).code, 0);
  }
});

// A plugin whose load hook starts a timer counting for its version, and
// fails on purpose when told to (after starting the timer).
function loadHookSource(version, fail) {
  return `-- loadhook v${version}: written by tests/integration/reload.test.js
local ticks = parley.shared("ticks")
return {
	load = function()
		parley.timer(20, function() ticks[${version}] = (ticks[${version}] or 0) + 1 end, true)
		${fail ? 'error("load failed on purpose")' : ''}
	end,
	events = {
		["lh:state"] = function()
			return { version = ${version}, one = ticks[1] or 0, two = ticks[2] or 0, three = ticks[3] or 0 }
		end,
	},
}
`;
}

test('a version whose load hook throws is refused: the old one keeps running, its timers too, the new one\'s timers are cancelled, and the error is logged with file and line', { timeout: 30000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-loadhook-'));
  fs.mkdirSync(path.join(dir, 'loadhook'));
  const file = path.join(dir, 'loadhook', 'init.lua');
  fs.writeFileSync(file, loadHookSource(1, false));
  const srv = await h.startParley({ env: { PARLEY_PLUGIN_PATH: `${dir};${path.join(h.ROOT, 'tests', 'plugins')}`,
    PARLEY_PLUGINS: 'testkit,loadhook', PARLEY_WATCH: '0' } });
  const s = h.sioClient(srv, '/messages', { query: { userId: 'loadhook' }, transports: ['websocket'] });
  let disconnects = 0;
  s.on('disconnect', () => { disconnects++; });
  const state = () => s.timeout(3000).emitWithAck('lh:state');
  try {
    await h.connected(s);
    await until(state, (st) => st.one > 0, 'version 1\'s timer');

    fs.writeFileSync(file, loadHookSource(2, true));
    assert.equal(await h.reload(srv), 'refused');
    const mid = await state();
    // Timers of 20 ms on one loop: five more ticks of version 1's would
    // have let a live version 2 timer tick too.
    const after = await until(state, (st) => st.one >= mid.one + 5, 'version 1\'s timer after the refusal');
    assert.equal(after.version, 1, 'the version whose load hook failed was swapped in');
    assert.equal(after.two, 0, 'the failed version\'s timer runs');
    assert.match(srv.logs(), /scripts not loaded: loadhook: load hook failed: .*loadhook\/init\.lua:6: load failed on purpose/);

    // A good version afterwards takes over as usual.
    fs.writeFileSync(file, loadHookSource(3, false));
    assert.equal(await h.reload(srv), 'ok');
    const third = await state();
    assert.equal(third.version, 3);
    const last = await until(state, (st) => st.three >= third.three + 5, 'version 3\'s timer');
    assert.equal(last.version, 3);
    assert.equal(last.one, third.one, 'version 1\'s timer outlived its replacement');
    assert.equal(last.two, 0);
    assert.equal(disconnects, 0, 'the client was disconnected');
  } finally {
    s.close();
    assert.equal((await srv.stop()).code, 0);
  }
});

test('scripts/chat.lua reloaded while typing and presence are live: connections stay, and the new version finishes the typing and the offline the old one started (parley.shared)', { timeout: 30000 }, async () => {
  const { dir } = makeTree();
  const chat = path.join(dir, 'scripts', 'chat.lua');
  const srv = await parley.start({ plugins: ['testkit'], pluginPath: [path.join(h.ROOT, 'tests', 'plugins')],
    env: { PARLEY_SCRIPTS: path.join(dir, 'scripts'), PARLEY_WATCH: '0' },
    config: '{ plugin_config = { chat = { typing_ttl_ms = 3000, presence_grace_ms = 3000 } } }' });
  try {
    const ann = await srv.client('live-ann');
    const bob = await srv.client('live-bob');
    const cy = await srv.client('live-cy');
    let disconnects = 0;
    for (const c of [ann, bob]) c.socket.on('disconnect', () => { disconnects++; });
    for (const c of [ann, bob, cy]) await c.join('live');
    assert.deepEqual(await ann.request('typing:start', { conversationId: 'live' }), { success: true });
    assert.equal((await bob.next('typing:start')).version, undefined);
    // cy goes (offline after the grace period), under the old version.
    const sockets = async () => Number(/^parley_connections\{transport="websocket"\} (\d+)$/m
      .exec(await (await fetch(`${srv.url}/metrics`)).text())[1]);
    const open = await sockets();
    cy.close();
    await until(sockets, (n) => n === open - 1, 'cy\'s close seen by parley');

    // The new version marks what it sends.
    let src = fs.readFileSync(chat, 'utf8');
    const edits = [
      ['isTyping = true,', 'isTyping = true, version = 2,'],
      ['isTyping = false', 'isTyping = false, version = 2'],
      ['emit(event, { userId = user })', 'emit(event, { userId = user, version = 2 })'],
    ];
    for (const [from, to] of edits) {
      assert.ok(src.includes(from), `scripts/chat.lua no longer has ${from}`);
      src = src.split(from).join(to);
    }
    fs.writeFileSync(chat, src);
    assert.equal(await srv.reload(), 'ok', srv.logs());
    assert.match(srv.logs(), /scripts reloaded/);

    // Nobody refreshed ann's typing: the new version's sweep ends it, and
    // cy's grace period ends under the new version too.
    assert.deepEqual(await bob.next('typing:stop', 6000),
      { conversationId: 'live', userId: 'live-ann', isTyping: false, version: 2 });
    assert.deepEqual(await ann.next('user:offline', 6000), { userId: 'live-cy', version: 2 });
    assert.deepEqual(await bob.next('user:offline', 6000), { userId: 'live-cy', version: 2 });
    // The connections and their rooms are still there.
    assert.deepEqual(await bob.request('typing:start', { conversationId: 'live' }), { success: true });
    assert.equal((await ann.next('typing:start')).version, 2);
    assert.equal(disconnects, 0, 'a client was disconnected by the reload');
  } finally {
    await srv.stop();
  }
});

// Two plugins of one version: ab_b's filter stamps its version on the
// event, ab_a's handler adds its own, broadcasts the pair to the room and
// acks it. A version may be broken in ab_b alone (a syntax error).
function abSources(version, brokenB) {
  return {
    a: `-- ab_a v${version}: written by tests/integration/reload.test.js
return {
	events = {
		["ab:probe"] = function(sock, data)
			local seen = { a = ${version}, b = data.b, n = data.n }
			parley.to("ab"):emit("ab:heard", { from = sock.userId, a = seen.a, b = seen.b, n = seen.n })
			return seen
		end,
	},
}
`,
    b: `-- ab_b v${version}: written by tests/integration/reload.test.js
return {
	priority = 10,
	filter = function(sock, event, data)
		if event == "ab:probe" and type(data) == "table" then
			data.b = ${version}
			return data
		end
	end,
}
${brokenB ? 'this is not Lua' : ''}`,
  };
}

test('a reload that changes two plugins at once swaps both or neither: every ack and every broadcast of an event carries one version, and a version broken in one file changes nothing', { timeout: 120000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-atomic-'));
  const write = (version, brokenB) => {
    const src = abSources(version, brokenB);
    for (const m of ['a', 'b']) {
      fs.mkdirSync(path.join(dir, `ab_${m}`), { recursive: true });
      fs.writeFileSync(path.join(dir, `ab_${m}`, 'init.lua'), src[m]);
    }
  };
  write(1);
  const srv = await h.startParley({ env: { PARLEY_PLUGIN_PATH: `${dir};${path.join(h.ROOT, 'tests', 'plugins')}`,
    PARLEY_PLUGINS: 'testkit,ab_a,ab_b', PARLEY_WATCH: '0' } });
  const clients = [];
  const acks = [];                // { from, n, a, b }
  const heard = new Map();        // "from:n" -> [versions heard, by each listener]
  let probing = true;
  try {
    for (let i = 0; i < 10; i++) {
      const s = h.sioClient(srv, '/messages', { query: { userId: `ab${i}` }, transports: ['websocket'] });
      await h.connected(s);
      await s.timeout(3000).emitWithAck('test:join', { room: 'ab' });
      s.on('ab:heard', (m) => {
        const key = `${m.from}:${m.n}`;
        if (!heard.has(key)) heard.set(key, []);
        heard.get(key).push(`${m.a}/${m.b}`);
      });
      clients.push(s);
    }
    // Each client probes without pause while the reloads happen.
    const loops = clients.map(async (s, i) => {
      for (let n = 0; probing; n++) {
        const ack = await s.timeout(10000).emitWithAck('ab:probe', { n });
        acks.push({ from: `ab${i}`, n, a: ack.a, b: ack.b });
      }
    });
    const answered = async (expect) => {
      const ack = await clients[0].timeout(3000).emitWithAck('ab:probe', { n: -1 });
      assert.deepEqual({ a: ack.a, b: ack.b }, expect);
    };
    let current = 1;
    await answered({ a: 1, b: 1 });
    for (const [version, brokenB] of [[2], [3], [4, true], [5], [6, true], [7]]) {
      const mark = acks.length;
      await h.waitFor(() => acks.length, (n) => n >= mark + 50, 'probes between reloads');
      write(version, brokenB);
      const result = await h.reload(srv);
      assert.equal(result, brokenB ? 'refused' : 'ok', `version ${version}`);
      if (!brokenB) current = version;
      await answered({ a: current, b: current });
    }
    probing = false;
    await Promise.all(loops);
    // The last broadcasts: each listener hears each probe.
    await h.waitFor(() => [...heard.values()].reduce((t, v) => t + v.length, 0),
      (t) => t >= acks.length * clients.length, 'every broadcast heard', 15000);

    const mixed = acks.filter((x) => x.a !== x.b);
    assert.deepEqual(mixed.slice(0, 5), [], `${mixed.length} acks mixed two versions`);
    const seenVersions = [...new Set(acks.map((x) => x.a))].sort((x, y) => x - y);
    assert.deepEqual(seenVersions, [1, 2, 3, 5, 7], 'the versions that answered');
    let mismatched = 0;
    for (const x of acks) {
      for (const v of heard.get(`${x.from}:${x.n}`) || []) if (v !== `${x.a}/${x.b}`) mismatched++;
    }
    assert.equal(mismatched, 0, 'a broadcast carried another version than the ack of its event');
    assert.match(srv.logs(), /scripts not loaded: .*ab_b\/init\.lua:\d+:/);
  } finally {
    probing = false;
    clients.forEach((s) => s.close());
    assert.equal((await srv.stop()).code, 0);
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
