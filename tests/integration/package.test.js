// package.test.js - packaging (issue 20, item 1): `cmake --install` puts the
// binary, the default scripts and plugins, the example config and a systemd
// unit in place; the installed binary, run from another directory with the
// installed example config, finds its scripts and serves a message; the unit
// passes `systemd-analyze verify`; CPack's .deb, unpacked into a scratch
// root (dpkg-deb -x), runs the same way; a binary with no scripts to find
// says which setting to set. Uses the build folder of PARLEY_BIN.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

test.after(h.cleanup);

const BUILD = path.dirname(h.BINARY);
const tmp = (what) => fs.mkdtempSync(path.join(os.tmpdir(), `parley-package-${what}-`));
const cache = fs.readFileSync(path.join(BUILD, 'CMakeCache.txt'), 'utf8');
const PREFIX = /^CMAKE_INSTALL_PREFIX:PATH=(.*)$/m.exec(cache)[1];
// GNUInstallDirs: /etc for the /usr prefix, PREFIX/etc for the others.
const SYSCONF = PREFIX === '/usr' ? '/etc' : `${PREFIX}/etc`;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

// Starts the binary `bin` from an empty working directory with only the
// installed example config (its port and data directory from the
// environment), and sends one message through it.
async function serveFromAnywhere(bin, config) {
  const cwd = tmp('cwd');
  const srv = await h.startParley({
    cwd, binary: bin,
    env: { PARLEY_SCRIPTS: '', PARLEY_PLUGIN_PATH: '', PARLEY_PLUGINS: '', PARLEY_CONFIG: config },
  }).catch((e) => { throw new Error(`${bin} did not start from ${cwd}: ${e.message}`); });
  try {
    const s = await h.connected(h.sioClient(srv, '/messages', { query: { userId: 'u1' }, transports: ['websocket'] }));
    const ack = await s.timeout(5000).emitWithAck('message:send', { conversationId: 'c1', clientMessageId: 'm1', type: 'text', content: 'hi' });
    assert.equal(ack.status, 'sent', JSON.stringify(ack));
    s.close();
    return srv.logs();
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
}

test('cmake --install: binary, scripts and plugins under share/parley, the example config, a systemd unit that systemd-analyze verify passes; it runs from any directory', async () => {
  const root = tmp('install');
  // DESTDIR, as a package build stages it: the config's place is absolute
  // (/etc for a /usr prefix).
  run('cmake', ['--install', BUILD], { env: { ...process.env, DESTDIR: root } });
  const at = (p) => path.join(root, PREFIX, p);
  const CONFIG = path.join(root, SYSCONF, 'parley/parley.conf.lua');
  for (const f of ['bin/parley', 'share/parley/scripts/init.lua', 'share/parley/scripts/chat.schema.lua',
    'share/parley/plugins/reactions/init.lua', CONFIG, 'lib/systemd/system/parley.service']) {
    assert.ok(fs.existsSync(path.isAbsolute(f) ? f : at(f)), `${f} not installed`);
  }
  assert.equal(fs.existsSync(at('share/parley/plugins/reactions/test')), false, 'plugin tests installed');

  // The unit as installed, with its ExecStart pointed at the scratch binary
  // (systemd-analyze checks that the command exists).
  const unit = fs.readFileSync(at('lib/systemd/system/parley.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${PREFIX}/bin/parley$`, 'm'));
  for (const opt of ['DynamicUser=yes', 'User=parley', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes', 'CapabilityBoundingSet=']) {
    assert.ok(unit.split('\n').includes(opt), `the unit lacks ${opt}`);
  }
  const dir = tmp('unit');
  fs.writeFileSync(path.join(dir, 'parley.service'), unit.replace(/^ExecStart=.*$/m, `ExecStart=${at('bin/parley')}`));
  const v = spawnSync('systemd-analyze', ['verify', path.join(dir, 'parley.service')], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.equal((v.stdout + v.stderr).trim(), '', 'systemd-analyze verify has remarks');

  assert.match(unit, new RegExp(`^Environment=PARLEY_CONFIG=${SYSCONF}/parley/parley.conf.lua$`, 'm'));
  const logs = await serveFromAnywhere(at('bin/parley'), CONFIG);
  assert.match(logs, /scripts: .*share\/parley\/scripts/);
});

test('the .deb CPack builds, unpacked into a scratch root, runs from any directory with its example config', async () => {
  const out = tmp('cpack');
  run('cpack', ['--config', path.join(BUILD, 'CPackConfig.cmake'), '-G', 'DEB', '-B', out]);
  const deb = fs.readdirSync(out).find((f) => f.endsWith('.deb'));
  assert.ok(deb, 'no .deb made');
  const info = run('dpkg-deb', ['-I', path.join(out, deb)]);
  assert.match(info, /Depends:.*libluajit.*/);
  assert.match(info, /conffiles/);
  const root = tmp('root');
  run('dpkg-deb', ['-x', path.join(out, deb), root]);
  const logs = await serveFromAnywhere(path.join(root, PREFIX, 'bin/parley'), path.join(root, SYSCONF, 'parley/parley.conf.lua'));
  assert.match(logs, /scripts: .*share\/parley\/scripts/);
});

test('a binary with no scripts to find (none in the working directory, none installed) says which setting to set', () => {
  const bin = h.BINARY;
  const share = /^PARLEY_SHARE_DIR:PATH=(.*)$/m.exec(cache)[1];
  if (fs.existsSync(path.join(share, 'scripts', 'init.lua'))) {
    test.skip(`parley is installed on this machine (${share}): it finds those`);
    return;
  }
  const r = spawnSync(bin, [], {
    cwd: tmp('empty'), encoding: 'utf8', timeout: 10000,
    env: { PATH: process.env.PATH, PORT: '1', PARLEY_DATA_DIR: path.join(tmp('data'), 'd') },
  });
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /PARLEY_SCRIPTS: no scripts found .*: set PARLEY_SCRIPTS \(file key scripts\) to the folder of parley's Lua scripts/);
});
