// config.test.js - configuration that tells the truth (issue 20, item 6):
// the example config --help prints and the README's both start as written;
// a plugin_config key that names no enabled plugin or script is refused; the
// default scripts' own settings are checked against their schemas ("3s" is
// refused, not silently 5000); sizes take units as the README writes them;
// SIGHUP (and a change of the config file, when watched) applies what it can
// (plugins, plugin_config, log level) and names in a warning what it cannot
// (port, data directory); a broken config file on reload changes nothing.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

test.after(h.cleanup);

const tmp = (what) => fs.mkdtempSync(path.join(os.tmpdir(), `parley-config-${what}-`));

// A config file holding `body` (a Lua expression after `return`).
function configFile(body, name = 'parley.conf.lua') {
  const file = path.join(tmp('file'), name);
  fs.writeFileSync(file, `return ${body}\n`);
  return file;
}

// Runs parley that must refuse to start; resolves with its output.
function refused(env, cwd = h.ROOT) {
  const data = tmp('data');
  const r = spawnSync(h.BINARY, [], {
    cwd, encoding: 'utf8', timeout: 10000,
    env: { PATH: process.env.PATH, PORT: '1', PARLEY_DATA_DIR: data, ...env },
  });
  const out = r.stdout + r.stderr;
  assert.equal(r.signal, null, `parley did not exit by itself (it started):\n${out}`);
  assert.ok(r.status > 0, `parley exited ${r.status}:\n${out}`);
  assert.doesNotMatch(out, /listening/);
  return out;
}

// The default scripts and plugins, as a user who follows the docs has them.
// (PORT stays the test's: the environment wins over the file's port.)
const USER_ENV = { PARLEY_SCRIPTS: '', PARLEY_PLUGIN_PATH: '', PARLEY_PLUGINS: '' };

test('the example config --help prints starts as shown, from the repository', async () => {
  const help = spawnSync(h.BINARY, ['--help'], { encoding: 'utf8' }).stdout;
  const lines = help.split('\n');
  const first = lines.findIndex((l) => /^ {2}return \{/.test(l));
  assert.ok(first >= 0, `no example config in --help:\n${help}`);
  const last = lines.findIndex((l, i) => i > first && /^where /.test(l));
  const example = lines.slice(first, last).join('\n');
  assert.match(example, /plugins = \{ "reactions" \}/);
  const dir = tmp('help');
  fs.writeFileSync(path.join(dir, 'parley.conf.lua'), example + '\n');
  const srv = await h.startParley({ env: { ...USER_ENV, PARLEY_CONFIG: path.join(dir, 'parley.conf.lua') } })
    .catch((e) => { throw new Error(`the --help example does not start:\n${example}\n${e.message}`); });
  // The plugin it enables answers (reactions' handler), with its setting.
  const s = await h.connected(h.sioClient(srv, '/messages', { query: { userId: 'u1' }, transports: ['websocket'] }));
  const r = await s.timeout(3000).emitWithAck('reaction:add', { conversationId: 'c1', messageId: 'm1', emoji: 'x'.repeat(17) });
  assert.match(JSON.stringify(r), /1 to 16 bytes/);
  s.close();
  assert.equal((await srv.stop()).code, 0);
});

test('the README\'s example config starts as written, from the repository', async () => {
  const readme = fs.readFileSync(path.join(h.ROOT, 'README.md'), 'utf8');
  const m = /A config file is Lua[^`]*```lua\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, 'no example config in the README');
  const file = path.join(tmp('readme'), 'parley.conf.lua');
  fs.writeFileSync(file, m[1]);
  const srv = await h.startParley({ env: { ...USER_ENV, PARLEY_CONFIG: file } })
    .catch((e) => { throw new Error(`the README's example does not start:\n${m[1]}\n${e.message}`); });
  assert.equal((await srv.stop()).code, 0);
});

test('a plugin_config key that names no enabled plugin or script is refused at start, naming it', () => {
  const out = refused({ PARLEY_CONFIG: configFile('{ plugin_config = { reactions = { max_emoji_bytes = 8 } } }') });
  assert.match(out, /plugin_config\.reactions: no enabled plugin or script is named 'reactions'/);
  assert.match(out, /enabled: auth, validate, chat, messages/);
  const typo = refused({ PARLEY_CONFIG: configFile('{ plugin_config = { chats = { presence_grace_ms = 1000 } } }') });
  assert.match(typo, /plugin_config\.chats: no enabled plugin or script/);
});

test('the default scripts\' settings are checked against their schemas: "3s" is refused with a message, not 5000', () => {
  for (const [conf, why] of [
    ['{ chat = { presence_grace_ms = "3s" } }', /plugin_config\.chat\.presence_grace_ms: expected an integer, got string/],
    ['{ chat = { typing_ttl_ms = 1.5 } }', /plugin_config\.chat\.typing_ttl_ms: expected an integer/],
    ['{ chat = { sweep_ms = 0 } }', /plugin_config\.chat\.sweep_ms: at least 10/],
    ['{ chat = { grace_ms = 3000 } }', /plugin_config\.chat: unknown setting 'grace_ms'/],
    ['{ messages = { max_content = -1 } }', /plugin_config\.messages\.max_content: at least 1/],
    ['{ messages = { presence_query = "all" } }', /plugin_config\.messages\.presence_query: must be one of shared, everyone/],
    ['{ auth = { secret = "x" } }', /plugin_config\.auth: unknown setting 'secret'/],
  ]) {
    const out = refused({ PARLEY_CONFIG: configFile(`{ plugin_config = ${conf} }`) });
    assert.match(out, why, conf);
  }
});

test('a default script\'s setting reaches it: messages.max_content = 10 refuses 11 bytes', async () => {
  const srv = await h.startParley({ env: { PARLEY_CONFIG: configFile('{ plugin_config = { messages = { max_content = 10 } } }') } });
  const s = await h.connected(h.sioClient(srv, '/messages', { query: { userId: 'u1' }, transports: ['websocket'] }));
  const send = (content, id) => s.timeout(3000).emitWithAck('message:send', { conversationId: 'c1', clientMessageId: id, type: 'text', content });
  assert.match(JSON.stringify(await send('x'.repeat(11), 'a')), /longer than 10 bytes/);
  assert.equal((await send('x'.repeat(5), 'b')).status, 'sent');
  s.close();
  await srv.stop();
});

test('sizes take units as the README writes them: PARLEY_MAX_PAYLOAD=2KiB is 2048, map_size = "4GiB" in a file; "4 XiB" is refused', async () => {
  const srv = await h.startParley({ env: { PARLEY_MAX_PAYLOAD: '2KiB', PARLEY_CONFIG: configFile('{ map_size = "4GiB", max_buffer = "16 MiB" }') } });
  assert.equal((await h.pollHandshake(srv)).maxPayload, 2048);
  await srv.stop();
  const srv2 = await h.startParley({ env: { PARLEY_MAP_SIZE: '4GiB', PARLEY_MAX_PAYLOAD: '1 MB' } });
  assert.equal((await h.pollHandshake(srv2)).maxPayload, 1000000);
  await srv2.stop();
  for (const bad of ['4 XiB', '4GiBs', '1.5GiB', 'GiB', '99999999999TiB', '512KiB']) {
    assert.match(refused({ PARLEY_MAP_SIZE: bad }), /PARLEY_MAP_SIZE: .* is not a size in 1048576\.\.1099511627776 bytes/, bad);
  }
  assert.match(refused({ PARLEY_CONFIG: configFile('{ map_size = "4 XiB" }') }), /map_size: "4 XiB" is not a size/);
});

// ---- reload ----

// A parley whose plugins, port and data directory come from its config file
// (the environment names none of them): { srv, file, port, write(body) }.
async function startFromFile(bodyOf, env = {}, name = 'parley.conf.lua') {
  const port = await h.freePort();
  const file = configFile(bodyOf(port), name);
  const srv = await h.startParley({
    port, dataDir: null, env: { PORT: '', PARLEY_PLUGINS: '', PARLEY_CONFIG: file, ...env },
  });
  return { srv, file, port, write: (body) => fs.writeFileSync(file, `return ${body}\n`) };
}

// test:echo answers only when the testkit plugin is loaded.
async function echoes(s) {
  try { return (await s.timeout(2000).emitWithAck('test:echo', 'x')) === 'x'; } catch (_) { return false; }
}

test('SIGHUP applies the plugin list, plugin_config and the log level from the changed file, and names in a warning what needs a restart (port, data_dir)', async () => {
  const data = tmp('data');
  const { srv, port, write } = await startFromFile((p) => `{ port = ${p}, data_dir = "${data}", log = "warn",
    plugin_config = { messages = { max_content = 10 } } }`, { PARLEY_WATCH: '0' });
  const s = await h.connected(h.sioClient(srv, '/messages', { query: { userId: 'u1' }, transports: ['websocket'] }));
  const send = (content, id) => s.timeout(3000).emitWithAck('message:send', { conversationId: 'c1', clientMessageId: id, type: 'text', content });
  assert.equal(await echoes(s), false, 'testkit answers before it is enabled');
  assert.match(JSON.stringify(await send('x'.repeat(15), 'a')), /longer than 10 bytes/);

  write(`{ port = ${port + 1}, data_dir = "${data}-moved", log = "info", plugins = { "testkit" },
    plugin_config = { messages = { max_content = 20 }, testkit = { } } }`);
  assert.equal(await h.reload(srv), 'ok', srv.logs());
  assert.equal(await echoes(s), true, `the plugin list of the file did not take effect:\n${srv.logs()}`);
  assert.equal((await send('x'.repeat(15), 'b')).status, 'sent', 'plugin_config did not take effect');
  const logs = srv.logs();
  assert.match(logs, /scripts reloaded/, 'log = "info" did not take effect');
  assert.match(logs, /reload: port \(PORT\), data_dir \(PARLEY_DATA_DIR\) changed, but cannot while parley runs/);
  assert.ok((await fetch(`${srv.url}/healthz`)).ok, 'the port changed under the running server');
  assert.equal(fs.existsSync(`${data}-moved`), false, 'the store moved under the running server');

  // A broken file: refused, with its reason; everything runs on as it was.
  write(`{ port = ${port}, max_payload = "huge", plugins = { } }`);
  assert.equal(await h.reload(srv), 'refused');
  assert.match(srv.logs(), /reload refused: .*max_payload: "huge" is not a size/);
  assert.equal(await echoes(s), true, 'a refused reload dropped the plugin');
  s.close();
  assert.equal((await srv.stop()).code, 0);
});

test('with PARLEY_WATCH=1 a change of the config file (named parley.conf, not .lua) reloads, as SIGHUP does', async () => {
  const data = tmp('data');
  const { srv, port, write } = await startFromFile((p) => `{ port = ${p}, data_dir = "${data}" }`,
    { PARLEY_WATCH: '1' }, 'parley.conf');
  const s = await h.connected(h.sioClient(srv, '/messages', { query: { userId: 'u1' }, transports: ['websocket'] }));
  assert.equal(await echoes(s), false);
  const before = await h.scriptLoads(srv);
  write(`{ port = ${port}, data_dir = "${data}", plugins = { "testkit" } }`);
  assert.equal(await h.loaded(srv, before), 'ok', srv.logs());
  assert.equal(await echoes(s), true, `the changed plugin list did not take effect:\n${srv.logs()}`);
  s.close();
  assert.equal((await srv.stop()).code, 0);
});
