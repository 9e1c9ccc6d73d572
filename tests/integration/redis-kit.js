// redis-kit.js - the private Redis of the cluster tests: Debian's
// redis-server on a Unix socket in the test's temp directory, with no
// persistence, started, frozen, killed and asked (redis-cli) by the test.
// One place for it, so that every cluster test file starts it the same way.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness');

const REDIS = '/usr/bin/redis-server';
// Why a cluster test cannot run here (false: it can): it needs the shared
// store and a Redis.
const redisSkip = !h.PG ? 'needs PostgreSQL (PARLEY_TEST_PG, the PostgreSQL pass of tests/run.sh)'
  : !fs.existsSync(REDIS) ? `needs Redis (${REDIS}; tests/deps.sh --test installs it)` : false;

// A Redis in `dir` (its socket dir/redis.sock), not started yet.
function privateRedis(dir) {
  const sock = path.join(dir, 'redis.sock');
  let proc = null;
  const cli = (...args) => execFileSync('redis-cli', ['-s', sock, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const r = {
    sock,
    uri: `unix://${sock}`,
    cli,
    get running() { return proc !== null; },
    // Starts it; resolves once it answers PING. `args`: more options.
    async start(args = []) {
      proc = spawn(REDIS, ['--port', '0', '--unixsocket', sock, '--dir', dir, '--save', '',
        '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout.on('data', (d) => { out += d; });
      proc.stderr.on('data', (d) => { out += d; });
      await h.waitFor(() => { try { return cli('PING'); } catch (_) { return null; } },
        (v) => v === 'PONG', `redis-server answers PING (${out})`);
    },
    // SIGKILL (a frozen one thawed first); resolves once it is gone.
    stop() {
      const p = proc;
      proc = null;
      if (!p) return Promise.resolve();
      const gone = new Promise((res) => p.on('exit', res));
      p.kill('SIGCONT');
      p.kill('SIGKILL');
      return gone;
    },
    // The same without waiting, for an exit handler.
    stopNow() {
      if (proc) { proc.kill('SIGCONT'); proc.kill('SIGKILL'); }
      proc = null;
    },
    // SIGSTOP / SIGCONT: a Redis that reads nothing, and again.
    signal(sig) { proc.kill(sig); },
    // Subscribers of a room's channel of /messages, over every node.
    shardSubscribers: (room) =>
      Number(cli('PUBSUB', 'SHARDNUMSUB', `parley:/messages:room:${room}`).split('\n')[1]),
  };
  return r;
}

module.exports = { REDIS, redisSkip, privateRedis };
