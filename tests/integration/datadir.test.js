// datadir.test.js - one parley per data directory: a second process on a
// directory another one holds refuses to start, names the directory and the
// holder's pid and exits non-zero, whatever its port and however it names
// the directory (the same path, a symlink, a relative path, the default
// ./data); the first keeps serving and loses nothing. The hold goes with
// the process: after kill -9 a new parley starts on the directory at once.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const running = [];
test.after(async () => {
  for (const p of running) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
});

async function start(opts) {
  const srv = await h.startParley(opts);
  running.push(srv);
  return srv;
}

// Spawns parley and resolves with its exit status and output once it exits.
// A parley that serves /healthz on its own port, or is still running after
// 10 s, is a failure (and is stopped). On a port that another parley holds,
// only the exit tells.
async function refused(opts) {
  const p = await h.spawnParley(opts);
  running.push(p);
  const ownPort = !opts.port;
  const deadline = Date.now() + 10000;
  let served = false;
  while (p.proc.exitCode === null && p.proc.signalCode === null && Date.now() < deadline && !served) {
    if (ownPort) {
      try {
        served = (await fetch(`${p.url}/healthz`)).ok;
      } catch (_) { /* not listening */ }
    }
    await h.sleep(25);
  }
  if (p.proc.exitCode === null && p.proc.signalCode === null) {
    p.proc.kill('SIGKILL');
    assert.fail(`a second parley on ${opts.dataDir ?? './data'} started (${served ? 'and served /healthz' : 'still running after 10 s'}):\n${p.logs()}`);
  }
  return { ...(await p.exited), logs: p.logs() };
}

function assertRefusal(st, dir, holder) {
  assert.notEqual(st.code, 0, `the second parley exited 0:\n${st.logs}`);
  assert.equal(st.signal, null, `the second parley died by ${st.signal}:\n${st.logs}`);
  const real = fs.realpathSync(dir);
  assert.ok(st.logs.includes(real), `the refusal does not name ${real}:\n${st.logs}`);
  assert.match(st.logs, new RegExp(`\\bpid ${holder.proc.pid}\\b`), `the refusal does not name pid ${holder.proc.pid}:\n${st.logs}`);
  assert.match(st.logs, /one process per data directory/);
  assert.doesNotMatch(st.logs, /Sanitizer|runtime error:/);
}

const client = h.messagesClient;

async function send(s, conv, id) {
  const ack = await s.timeout(5000).emitWithAck('message:send',
    { conversationId: conv, clientMessageId: id, type: 'text', content: id });
  assert.equal(ack.status, 'sent', `no ack for ${id}: ${JSON.stringify(ack)}`);
  return ack.messageId;
}

async function contents(srv, conv) {
  const s = await client(srv, 'reader');
  try {
    const { messages } = await s.timeout(5000).emitWithAck('messages:sync', { conversationId: conv, limit: 100 });
    return messages.map((m) => m.content);
  } finally {
    s.close();
  }
}

test('a second parley on a held data directory refuses to start, on another port or the same one, and the first loses nothing', h.lmdbOnly('the data directory\'s lock is LMDB\'s (PostgreSQL is shared by design)'), async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-own-'));
  const first = await start({ dataDir });
  const a = await client(first, 'own-a');
  try {
    for (let i = 0; i < 3; i++) await send(a, 'own', `n${i}`);
    assertRefusal(await refused({ dataDir }), dataDir, first);
    assertRefusal(await refused({ dataDir, port: first.port }), dataDir, first);
    for (let i = 3; i < 6; i++) await send(a, 'own', `n${i}`);
    assert.deepEqual(await contents(first, 'own'), ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  } finally {
    a.close();
  }
  assert.equal((await first.stop()).code, 0);
  const again = await start({ dataDir });
  assert.deepEqual(await contents(again, 'own'), ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  await again.stop();
});

test('the directory is the same through a symlink, a relative path and the default ./data', h.lmdbOnly('the data directory\'s lock is LMDB\'s (PostgreSQL is shared by design)'), async () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-paths-'));
  const dataDir = path.join(parent, 'store');
  fs.mkdirSync(dataDir);
  fs.symlinkSync(dataDir, path.join(parent, 'link'));
  const first = await start({ dataDir });
  assertRefusal(await refused({ dataDir: path.join(parent, 'link') }), dataDir, first);
  assertRefusal(await refused({ dataDir: 'store', cwd: parent }), dataDir, first);
  assertRefusal(await refused({ dataDir: './link/../store/', cwd: parent }), dataDir, first);
  await first.stop();

  // Two started the README's way, in one working directory: ./data.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-home-'));
  const byDefault = await start({ dataDir: null, cwd: home });
  assert.ok(fs.existsSync(path.join(home, 'data')), 'the default data directory was not created in the working directory');
  assertRefusal(await refused({ dataDir: null, cwd: home }), path.join(home, 'data'), byDefault);
  await byDefault.stop();
});

test('after kill -9 a new parley starts on the directory at once, with every acked message, and holds it in turn', h.lmdbOnly('the data directory\'s lock is LMDB\'s (pgstore.test.js kills parley mid-load on PostgreSQL)'), async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-kill-'));
  const first = await start({ dataDir });
  const a = await client(first, 'kill-a');
  for (let i = 0; i < 4; i++) await send(a, 'kill', `k${i}`);
  a.close();
  await first.kill('SIGKILL');

  const second = await start({ dataDir });
  assert.deepEqual(await contents(second, 'kill'), ['k0', 'k1', 'k2', 'k3']);
  assertRefusal(await refused({ dataDir }), dataDir, second);
  await second.stop();
});

test('--help says one process per data directory, and where several processes go', () => {
  const { spawnSync } = require('node:child_process');
  const r = spawnSync(h.BINARY, ['--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /One process per data directory/);
  assert.match(r.stdout, /shared store/);
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
