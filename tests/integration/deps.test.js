// deps.test.js - tests/deps.sh installs what each kind of run needs and no
// more: a plugin's tests (tests/plugin-test.sh, --plugin-test) do not
// install Chromium or strace, which only the browser and fsync tests use.
// The package tools are stand-ins on PATH that record what they were asked
// (nothing is installed): dpkg-query says every package is missing.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

// Runs deps.sh with `args` and returns the packages apt-get was asked for.
function asked(args) {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-deps-'));
  const log = path.join(bin, 'log');
  const stub = (name, body) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  stub('dpkg-query', 'exit 1');
  stub('apt-get', `echo "$@" >> ${log}`);
  stub('sudo', '"$@"');
  stub('npm', `echo "npm $@" >> ${log}`);
  const r = spawnSync('bash', [path.join(ROOT, 'tests', 'deps.sh'), ...args],
    { env: { PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
  const out = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  fs.rmSync(bin, { recursive: true, force: true });
  return { status: r.status, stderr: r.stderr, install: out.split('\n').filter((l) => l.startsWith('install')).join(' ') };
}

test('deps.sh --plugin-test installs the build\'s packages (libpq-dev too) and not Chromium, strace or PostgreSQL; --test installs them', () => {
  const plugin = asked(['--plugin-test']);
  assert.equal(plugin.status, 0, plugin.stderr);
  assert.match(plugin.install, /liblmdb-dev/);
  assert.match(plugin.install, /libpq-dev/);
  assert.doesNotMatch(plugin.install, /chromium|strace|postgresql(?!-)/);
  const all = asked(['--test']);
  assert.equal(all.status, 0, all.stderr);
  assert.match(all.install, /chromium/);
  assert.match(all.install, /strace/);
  assert.match(all.install, / postgresql( |$)/);
  assert.equal(asked(['--bogus']).status, 2);
});

test('plugin-test.sh asks deps.sh for --plugin-test, not --test', () => {
  const text = fs.readFileSync(path.join(ROOT, 'tests', 'plugin-test.sh'), 'utf8');
  const calls = text.split('\n').filter((l) => /deps\.sh/.test(l) && !l.trim().startsWith('#'));
  assert.equal(calls.length, 1, calls.join('\n'));
  assert.match(calls[0], /deps\.sh" --plugin-test/);
});
