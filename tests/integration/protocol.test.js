// protocol.test.js - the official Socket.IO protocol suite (socketio/
// socket.io-protocol's test-suite/, kept unchanged in ../shared/
// socketio-protocol-suite with its pinned packages and its own license)
// against parley running the suite's reference server as scripts
// (tests/protocol/). All 32 of its tests must run, and every one must pass.
//
// The suite is copied to tests/.tmp/protocol-suite with its URL pointed at
// this parley, and its packages installed there from its own package-lock
// (npm ci, again only when the lock changes). Its node-imports.js is
// replaced by one that gives ws's WebSocket allowSynchronousEvents: false:
// a browser dispatches each message as its own task, and the suite's
// waitFor(..., {once: true}) misses the second of two messages that ws
// emits from one read otherwise (the suite's README).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const h = require('./harness');

// Tests that need several arguments per event and per ack, which is issue
// 17's "every argument, both ways" work (branch wt-i17-args): until it is
// merged they fail, and are reported as skipped. Once one passes its
// subtest fails, saying so: then the list goes (and this comment with it).
const SUITE_TESTS = 32;
// The whole suite takes about 10 s; each of its tests has mocha's 2 s.
const SUITE_TIMEOUT_MS = 120000;

const CANDIDATES = [
  process.env.PARLEY_PROTOCOL_SUITE,
  path.join(h.ROOT, '..', 'shared', 'socketio-protocol-suite'),
].filter(Boolean);
const SUITE = CANDIDATES.find((d) => fs.existsSync(path.join(d, 'test-suite.js')));
const WORK = path.join(h.ROOT, 'tests', '.tmp', 'protocol-suite');

// A copy of the suite with its pinned packages installed, pointed at `port`.
function prepare(port) {
  fs.mkdirSync(WORK, { recursive: true });
  for (const f of ['package.json', 'package-lock.json', 'test-suite.js']) {
    fs.copyFileSync(path.join(SUITE, f), path.join(WORK, f));
    fs.chmodSync(path.join(WORK, f), 0o644);
  }
  const lock = fs.readFileSync(path.join(SUITE, 'package-lock.json'));
  const stamp = path.join(WORK, 'node_modules', '.parley-lock');
  if (!fs.existsSync(stamp) || !fs.readFileSync(stamp).equals(lock)) {
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'],
      { cwd: WORK, encoding: 'utf8', timeout: 300000 });
    assert.equal(r.status, 0, `npm ci in ${WORK} failed:\n${r.stdout}${r.stderr}`);
    fs.writeFileSync(stamp, lock);
  }
  const suite = fs.readFileSync(path.join(SUITE, 'test-suite.js'), 'utf8');
  const url = 'const URL = "http://localhost:3000";';
  assert.ok(suite.includes(url), `the suite no longer says ${url}`);
  fs.writeFileSync(path.join(WORK, 'test-suite.js'), suite.replace(url, `const URL = "http://localhost:${port}";`));
  fs.writeFileSync(path.join(WORK, 'node-imports.js'), `import fetch from "node-fetch";
import { WebSocket as WS } from "ws";
import chai from "chai";
import chaiString from "chai-string";

chai.use(chaiString);

// As a browser: each message its own task.
class WebSocket extends WS {
  constructor(url, protocols, options) {
    super(url, protocols, { allowSynchronousEvents: false, ...options });
  }
}

globalThis.fetch = fetch;
globalThis.WebSocket = WebSocket;
globalThis.chai = chai;
`);
}

// Runs mocha on the copy, with its JSON report in a file; resolves to the
// report, or fails with what mocha said. Asynchronous: parley's output must
// go on being read meanwhile (a full pipe would stop it).
function runSuite() {
  const report = path.join(WORK, 'report.json');
  fs.rmSync(report, { force: true });
  return new Promise((resolve, reject) => {
    const mocha = spawn(process.execPath,
      [path.join(WORK, 'node_modules', 'mocha', 'bin', 'mocha'), '--reporter', 'json',
        '--reporter-option', `output=${report}`, 'test-suite.js'],
      { cwd: WORK, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    mocha.stdout.on('data', (d) => { out += d; });
    mocha.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => mocha.kill('SIGKILL'), SUITE_TIMEOUT_MS);
    mocha.on('error', reject);
    mocha.on('exit', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(fs.readFileSync(report, 'utf8')));
      } catch (_) {
        reject(new Error(`mocha gave no report (exit ${code}, ${signal || 'no signal'}; ` +
          `killed after ${SUITE_TIMEOUT_MS} ms if SIGKILL):\n${out}`));
      }
    });
  });
}

test('the official Socket.IO protocol suite passes against the reference server as parley scripts', { timeout: SUITE_TIMEOUT_MS + 360000 }, async (t) => {
  assert.ok(SUITE, `the protocol suite is not found (looked in ${CANDIDATES.join(', ')}; set PARLEY_PROTOCOL_SUITE)`);
  // The reference server of the suite's README.
  const srv = await h.startParley({
    env: {
      PARLEY_SCRIPTS: path.join(h.ROOT, 'tests', 'protocol'),
      PARLEY_PLUGINS: '',
      PARLEY_PING_INTERVAL: '300',
      PARLEY_PING_TIMEOUT: '200',
      PARLEY_CONNECT_TIMEOUT: '1000',
      PARLEY_MAX_PAYLOAD: '1000000',
      FRONTEND_URL: '*',
    },
  });
  try {
    prepare(srv.port);
    const report = await runSuite();
    const failed = new Map(report.failures.map((f) => [f.fullTitle, f.err.message]));
    assert.equal(report.stats.tests, SUITE_TESTS, `the suite has ${SUITE_TESTS} tests: ${report.stats.tests} ran`);
    const titles = report.tests.map((x) => x.fullTitle);
    // One subtest per test of the suite, so that a run shows each.
    for (const title of titles) {
      await t.test(title, () => {
        assert.ok(!failed.has(title), `${failed.get(title)}\n${srv.logs()}`);
      });
    }
  } finally {
    await srv.stop();
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
test.after(h.cleanup);
