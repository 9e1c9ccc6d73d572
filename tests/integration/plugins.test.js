// plugins.test.js - plugins are folders enabled by configuration
// (PARLEY_PLUGINS), each with its own environment; a plugin's configuration
// (plugin_config in the config file) is checked against its schema.lua and
// filled with defaults, and a bad one stops parley at start with a message
// that names the plugin and the field. What a plugin registers goes when it
// unloads: its timers stop, its unload hook runs. Several modules' hooks run
// by priority, then configuration order (tests/plugins/order_{a,b,c}).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

function configFile(pluginConfig) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-conf-'));
  const file = path.join(dir, 'parley.conf.lua');
  fs.writeFileSync(file, `return { plugin_config = ${pluginConfig} }\n`);
  return file;
}

function env(file) {
  return { PARLEY_CONFIG: file, PARLEY_PLUGINS: 'testkit,configured' };
}

test('a valid plugin_config reaches the plugin checked and with its defaults filled in', async () => {
  const file = configFile('{ configured = { limit = 42, rates = { send = 5 }, owner = { name = "ops" } } }');
  const srv = await h.startParley({ env: env(file) });
  const s = h.sioClient(srv, '/messages', { query: { userId: 'cfg' }, transports: ['websocket'] });
  try {
    await h.connected(s);
    assert.deepEqual(await s.timeout(3000).emitWithAck('cfg:get'), {
      greeting: 'hello', limit: 42, mode: 'safe', rates: { send: 5 }, owner: { name: 'ops', admin: false },
    });
  } finally {
    s.close();
    await srv.stop();
  }
});

for (const [conf, message] of [
  ['{ configured = { limit = "ten" } }', /plugin 'configured': plugin_config\.configured\.limit: expected an integer, got string/],
  ['{ configured = { limit = 1000 } }', /plugin_config\.configured\.limit: at most 100/],
  ['{ configured = { mode = "reckless" } }', /plugin_config\.configured\.mode: must be one of fast, safe/],
  ['{ configured = { colour = "red" } }', /plugin_config\.configured: unknown setting 'colour'/],
  ['{ configured = { owner = { admin = true } } }', /plugin_config\.configured\.owner\.name is required/],
  ['{ configured = { rates = { send = -1 } } }', /plugin_config\.configured\.rates\[send\]: at least 0/],
]) {
  test(`a bad plugin_config stops parley at start, naming the field: ${conf}`, async () => {
    const file = configFile(conf);
    const port = await h.freePort();
    const r = spawnSync(h.BINARY, [], {
      cwd: h.ROOT, timeout: 10000, encoding: 'utf8',
      env: { PATH: process.env.PATH, PORT: String(port), PARLEY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'parley-d-')),
        PARLEY_PLUGIN_PATH: path.join(h.ROOT, 'tests', 'plugins'), ...env(file) },
    });
    assert.notEqual(r.status, 0, 'parley started with a bad plugin_config');
    assert.match(r.stderr + r.stdout, message);
  });
}

test('a plugin\'s timers stop and its unload hook runs when a new version replaces it', { timeout: 30000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-own-'));
  fs.mkdirSync(path.join(dir, 'ticker'));
  const file = path.join(dir, 'ticker', 'init.lua');
  const source = (v) => `local t = parley.shared("ticks")
return {
	load = function()
		parley.timer(20, function() t[${v}] = (t[${v}] or 0) + 1 end, true)
	end,
	unload = function() t.unloaded = ${v} end,
	events = { ["tick:counts"] = function() return { one = t[1] or 0, two = t[2] or 0, unloaded = t.unloaded } end },
}
`;
  fs.writeFileSync(file, source(1));
  const srv = await h.startParley({ env: { PARLEY_PLUGIN_PATH: `${dir};${path.join(h.ROOT, 'tests', 'plugins')}`,
    PARLEY_PLUGINS: 'testkit,ticker', PARLEY_WATCH: '0' } });
  const s = h.sioClient(srv, '/messages', { query: { userId: 'ticker' }, transports: ['websocket'] });
  try {
    await h.connected(s);
    const counts = () => s.timeout(3000).emitWithAck('tick:counts');
    // Waits for the timers' counts to reach `ok` (each ticks every 20 ms).
    const until = async (ok, what) => {
      const deadline = Date.now() + 10000;
      for (let c = await counts(); ; c = await counts()) {
        if (ok(c)) return c;
        if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(c)}`);
        await h.sleep(10);
      }
    };
    const before = await until((c) => c.one > 0, 'version 1\'s timer never ticked');
    assert.equal(before.two, 0, JSON.stringify(before));
    fs.writeFileSync(file, source(2));
    assert.equal(await h.reload(srv), 'ok', srv.logs());
    const mid = await counts();
    assert.equal(mid.unloaded, 1, 'the old version\'s unload hook did not run before the swap');
    // Five ticks of the new timer: the old one, had it lived, ticked too.
    const after = await until((c) => c.two >= mid.two + 5, 'the new version\'s timer is not running');
    assert.equal(after.one, mid.one, 'the old version\'s timer is still running');
  } finally {
    s.close();
    await srv.stop();
  }
});

// tests/plugins/order_{a,b,c}: b has priority 10, a and c 0. Each one's
// connected hook, filter and handler emit "order:ran" as they run, and
// each handler returns its name (the first value returned is the ack).
for (const [plugins, expected] of [
  ['order_c,order_a,order_b', ['b', 'c', 'a']],
  ['order_a,order_c,order_b', ['b', 'a', 'c']],
]) {
  test(`hooks of several modules run by priority, then configuration order: PARLEY_PLUGINS=${plugins} runs ${expected.join(', ')}`, async () => {
    const srv = await h.startParley({ env: { PARLEY_PLUGINS: `testkit,${plugins}` } });
    const s = h.sioClient(srv, '/messages', { query: { userId: 'order' }, transports: ['websocket'] });
    const ran = [];
    s.on('order:ran', (what) => ran.push(what));
    try {
      await h.connected(s);
      // What the hooks emitted went out before the ack, on the same socket.
      const ack = await s.timeout(3000).emitWithAck('order:probe', {});
      assert.deepEqual(ran, ['connected', 'filter', 'event'].flatMap((hook) => expected.map((m) => `${hook}:${m}`)));
      assert.equal(ack, expected[0], 'the ack is not the first handler\'s value');
    } finally {
      s.close();
      await srv.stop();
    }
  });
}

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
