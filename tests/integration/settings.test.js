// settings.test.js - where a setting comes from (README "Settings"): the
// environment wins over the config file, which wins over the built-in
// default, for settings of every kind (integer, size, path, optional string,
// secret, plugin list, log level), each observed in what parley does, not
// in what it prints of its configuration. And every setting that --help
// lists refuses a bad value at start, from the environment and from the
// file, with a message naming it: a new setting cannot escape the check.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

const running = [];
test.after(() => {
  for (const p of running) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
});

const tmp = (what) => fs.mkdtempSync(path.join(os.tmpdir(), `parley-settings-${what}-`));
const FILE_SECRET = 'the-file-secret-of-32-bytes-long';
const ENV_SECRET = 'the-env-secret-of-32-bytes-long!';

function sign(secret, sub) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// What a running parley does with each setting under test.
async function observe(p, ports, dirs) {
  const got = {};
  const deadline = Date.now() + 10000;
  while (got.port === undefined) {
    if (p.proc.exitCode !== null) throw new Error(`parley exited at start:\n${p.logs()}`);
    for (const port of ports) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) got.port = port;
      } catch (_) { /* not this one, or not yet */ }
    }
    if (Date.now() > deadline) throw new Error(`parley serves none of ${ports}:\n${p.logs()}`);
    if (got.port === undefined) await h.sleep(25);
  }
  const srv = { url: `http://127.0.0.1:${got.port}`, port: got.port };
  const hs = await h.pollHandshake(srv);
  got.ping_interval = hs.pingInterval;
  got.ping_timeout = hs.pingTimeout;
  got.max_payload = hs.maxPayload;
  got.data_dir = Object.keys(dirs).filter((k) => fs.existsSync(path.join(dirs[k], 'parley.lock')));

  // Who may connect: a bare userId (no secret), or a token of one secret.
  got.jwt_secret = [];
  let sock = null;
  for (const [name, opts] of [
    ['unset', { query: { userId: 'plain-user' } }],
    ['file', { auth: { token: sign(FILE_SECRET, 'file-user') } }],
    ['env', { auth: { token: sign(ENV_SECRET, 'env-user') } }],
  ]) {
    const s = h.sioClient(srv, '/messages', { transports: ['websocket'], ...opts });
    try {
      await h.connected(s);
      got.jwt_secret.push(name);
      if (sock) s.close(); else sock = s;
    } catch (_) {
      s.close();
    }
  }
  assert.ok(sock, 'no client could connect');
  // Which plugins answer: testkit's test:echo, observer's observe:get.
  got.plugins = [];
  if ((await sock.timeout(3000).emitWithAck('test:echo', 'x')) === 'x') got.plugins.push('testkit');
  const o = await sock.timeout(3000).emitWithAck('observe:get');
  if (o && o.upper === 'ABC') got.plugins.push('observer');
  sock.close();

  // Which key the HTTP API takes (with none set it refuses every one, 403).
  got.api_key = [];
  for (const key of ['file-key', 'env-key']) {
    const r = await fetch(`${srv.url}/api/users/online`, { headers: { Authorization: `Bearer ${key}` } });
    if (r.status === 200) got.api_key.push(key);
    else assert.ok(r.status === 401 || r.status === 403, `the API with ${key}: ${r.status}`);
  }

  process.kill(p.proc.pid, 'SIGTERM');
  const st = await p.exited;
  assert.deepEqual(st, { code: 0, signal: null }, p.logs());
  // The level, from what was logged: info says it listens, debug also logs
  // each Engine.IO session's close, warn says neither.
  const logs = p.logs();
  got.log = /closed \(/.test(logs) ? 'debug' : /parley listening/.test(logs) ? 'info' : 'warn';
  return got;
}

async function startWith({ file, env }) {
  const cwd = tmp('cwd');
  const full = { PORT: undefined, PARLEY_LOG: undefined, PARLEY_PLUGINS: undefined, ...env };
  if (file) {
    const conf = path.join(cwd, 'conf.lua');
    fs.writeFileSync(conf, `return ${file}\n`);
    full.PARLEY_CONFIG = conf;
  }
  const p = await h.spawnParley({ cwd, dataDir: null, env: full });
  running.push(p);
  return { p, cwd };
}

test('each kind of setting: the default with neither, the file\'s value with a file, the environment\'s over the file\'s, and a file value the environment leaves alone stays', { timeout: 120000, ...h.lmdbOnly('data_dir is seen through the LMDB lock file') }, async () => {
  const [filePort, envPort] = [await h.freePort(), await h.freePort()];
  // Each run gets new data directories: the lock file stays after an exit.
  let fileDir = tmp('filedata');
  let envDir = tmp('envdata');
  const file = () => `{
    port = ${filePort}, ping_interval = 11000, ping_timeout = 21000, max_payload = 200000,
    data_dir = "${fileDir}", api_key = "file-key", jwt_secret = "${FILE_SECRET}",
    plugins = { "testkit" }, log = "warn",
  }`;
  const env = () => ({
    PORT: String(envPort), PARLEY_PING_INTERVAL: '12000', PARLEY_PING_TIMEOUT: '22000',
    PARLEY_MAX_PAYLOAD: '300000', PARLEY_DATA_DIR: envDir, PARLEY_API_KEY: 'env-key',
    JWT_SECRET: ENV_SECRET, PARLEY_PLUGINS: 'observer', PARLEY_LOG: 'debug',
  });
  const fresh = () => { fileDir = tmp('filedata'); envDir = tmp('envdata'); };
  const ports = [filePort, envPort];

  // Neither (only the port, which must not be 3000 here, from the environment).
  let { p, cwd } = await startWith({ env: { PORT: String(envPort) } });
  let got = await observe(p, ports, { default: path.join(cwd, 'data'), file: fileDir, env: envDir });
  assert.deepEqual(got, {
    port: envPort, ping_interval: 25000, ping_timeout: 20000, max_payload: 1000000, data_dir: ['default'],
    jwt_secret: ['unset'], plugins: [], api_key: [], log: 'info',
  }, 'the defaults');

  // The file alone.
  fresh();
  ({ p, cwd } = await startWith({ file: file() }));
  got = await observe(p, ports, { default: path.join(cwd, 'data'), file: fileDir, env: envDir });
  assert.deepEqual(got, {
    port: filePort, ping_interval: 11000, ping_timeout: 21000, max_payload: 200000, data_dir: ['file'],
    jwt_secret: ['file'], plugins: ['testkit'], api_key: ['file-key'], log: 'warn',
  }, 'the config file\'s values');

  // The file, and the environment for every one of them: the environment wins.
  fresh();
  ({ p, cwd } = await startWith({ file: file(), env: env() }));
  got = await observe(p, ports, { default: path.join(cwd, 'data'), file: fileDir, env: envDir });
  assert.deepEqual(got, {
    port: envPort, ping_interval: 12000, ping_timeout: 22000, max_payload: 300000, data_dir: ['env'],
    jwt_secret: ['env'], plugins: ['observer'], api_key: ['env-key'], log: 'debug',
  }, 'the environment over the config file');

  // The file, and the environment for some: each setting from where it is set last.
  fresh();
  ({ p, cwd } = await startWith({ file: file(), env: {
    PARLEY_PING_INTERVAL: '12000', PARLEY_DATA_DIR: envDir, PARLEY_API_KEY: 'env-key', PARLEY_PLUGINS: 'observer',
  } }));
  got = await observe(p, ports, { default: path.join(cwd, 'data'), file: fileDir, env: envDir });
  assert.deepEqual(got, {
    port: filePort, ping_interval: 12000, ping_timeout: 21000, max_payload: 200000, data_dir: ['env'],
    jwt_secret: ['file'], plugins: ['observer'], api_key: ['env-key'], log: 'warn',
  }, 'the environment for some settings, the config file for the rest');
});

// ---- every setting refuses a bad value ----

// The settings --help lists: [{ env, key, def }].
function listed() {
  const r = spawnSync(h.BINARY, ['--help'], { encoding: 'utf8', timeout: 5000 });
  assert.equal(r.status, 0, r.stderr);
  const rows = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^ {2}([A-Z][A-Z0-9_]*) +([a-z_]+|-) +(\S+) /.exec(line);
    if (m && m[1] !== 'ENVIRONMENT') rows.push({ env: m[1], key: m[2], def: m[3] });
  }
  return rows;
}

// Bad values per kind of setting, from the environment and as a file's
// Lua expression. A setting whose default is a number is an integer; the
// others are named here. An empty environment variable counts as unset, so
// a path or an optional string has no bad value there: its file checks
// still run.
const INTEGER = { env: ['abc', '-5', '10x', '1.5', '99999999999999999999'], file: ['"abc"', '1.5', '-5', '{}'] };
// A size (a default such as 4GiB) takes units too (config.test.js); these
// are no size.
const SIZE = { env: ['abc', '-5', '10x', '1.5', '4 XiB', '99999999999999999999'], file: ['"abc"', '1.5', '-5', '{}', '"4 XiB"'] };
const isSize = (def) => /^\d+[KMGT]iB$/.test(def);
const KINDS = {
  PARLEY_DATA_DIR: { env: [], file: ['""', '5'] },
  PARLEY_STORE: { env: ['mysql://u@h/db', 'postgresql:/db', 'redis'], file: ['"mysql://u@h/db"', '5'] },
  PARLEY_SCRIPTS: { env: [], file: ['""', '5'] },
  PARLEY_PLUGIN_PATH: { env: [], file: ['""', '{}'] },
  FRONTEND_URL: { env: [], file: ['5', '{}'] },
  PARLEY_API_KEY: { env: [], file: ['5', '{}'] },
  PARLEY_PUSH_URL: { env: [], file: ['5', '{}'] },
  PARLEY_PUSH_SECRET: { env: [], file: ['5', '{}'] },
  JWT_SECRET: { env: ['short'], file: ['"short"', '5'] },
  PARLEY_PLUGINS: { env: ['Bad Name', 'a,,b', 'a,a', 'a;b'], file: ['{ 1 }', '"a,a"', '{ x = "a" }', '5'] },
  PARLEY_LOG: { env: ['loud', 'INFO1'], file: ['"loud"', '3'] },
  PARLEY_STATIC: { env: ['nonsense', '/api=/tmp', '/app=/nonexistent-dir'], file: ['"nonsense"', '5'] },
  PARLEY_CONFIG: { env: ['/nonexistent-dir/parley.conf.lua'], file: [] },
  PARLEY_BIND: { env: ['localhost', '1.2.3', '[::1'], file: ['"localhost"', '5'] },
  PARLEY_METRICS_ADDR: { env: ['127.0.0.1', '127.0.0.1:0', 'host:9100', '127.0.0.1:9x'], file: ['":9100"', '5'] },
  PARLEY_LOG_FORMAT: { env: ['xml'], file: ['"xml"', '5'] },
};

function refuses(env, what, name) {
  const cwd = tmp('bad');
  const r = spawnSync(h.BINARY, [], {
    cwd, encoding: 'utf8', timeout: 5000,
    env: { PATH: process.env.PATH, PORT: '1', PARLEY_DATA_DIR: path.join(cwd, 'data'), ...env },
  });
  const out = r.stdout + r.stderr;
  assert.equal(r.signal, null, `${what}: parley did not exit by itself (it started)`);
  assert.ok(r.status > 0, `${what}: exit ${r.status}\n${out}`);
  assert.ok(out.includes(name), `${what}: the message does not name ${name}:\n${out}`);
  assert.doesNotMatch(out, /listening/, what);
}

test('every setting --help lists refuses a bad value at start, from the environment and from the config file, naming the setting, and exits non-zero', () => {
  const rows = listed();
  assert.ok(rows.length >= 20, `--help lists ${rows.length} settings:\n${rows.map((r) => r.env).join(' ')}`);
  const unknown = rows.filter((r) => !/^\d+$/.test(r.def) && !isSize(r.def) && !KINDS[r.env]).map((r) => r.env);
  assert.deepEqual(unknown, [], 'settings with no bad values in settings.test.js: add their kind to KINDS');
  let checked = 0;
  for (const { env, key, def } of rows) {
    const kind = /^\d+$/.test(def) ? INTEGER : isSize(def) ? SIZE : KINDS[env];
    for (const value of kind.env) {
      refuses({ [env]: value }, `${env}=${value}`, env);
      checked++;
    }
    if (key === '-') continue;
    // A boolean is no setting's value; the rest per kind.
    for (const value of ['true', ...kind.file]) {
      const dir = tmp('badconf');
      const conf = path.join(dir, 'parley.conf.lua');
      fs.writeFileSync(conf, `return { ${key} = ${value} }\n`);
      refuses({ PARLEY_CONFIG: conf }, `${key} = ${value} in the config file`, key);
      checked++;
    }
  }
  assert.ok(checked > rows.length * 3, `only ${checked} refusals checked`);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
