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

// A Redis Cluster of `n` masters, each with `replicas` replicas, on loopback
// ports, in `dir`: each a redis-server with --cluster-enabled, joined by
// redis-cli --cluster create. Not started yet. A cluster speaks TCP only (its nodes tell each
// other and their clients host:port), so this one takes ports: a random
// base in 20000-24999, each master's bus port 10000 above its own.
function privateRedisCluster(dir, n = 3, replicas = 0) {
  const count = n * (1 + replicas);
  let procs = [];
  let ports = [];
  const cli = (port, ...args) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const spawnOne = (port) => {
    const p = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '3000',
      '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.out = '';
    p.stdout.on('data', (d) => { p.out += d; });
    p.stderr.on('data', (d) => { p.out += d; });
    return p;
  };
  const c = {
    get ports() { return ports; },
    // The address to give parley: any master will do.
    get uri() { return `redis://127.0.0.1:${ports[0]}`; },
    cli,
    // Starts the masters, joins them, resolves once every one says ok.
    async start() {
      for (let attempt = 0; attempt < 5 && !procs.length; attempt++) {
        const base = 20000 + Math.floor(Math.random() * 5000);
        const tried = Array.from({ length: count }, (_, i) => base + i);
        const started = tried.map(spawnOne);
        const ok = await Promise.all(started.map((p, i) => h.waitFor(
          () => { if (p.exitCode !== null) return 'exited'; try { return cli(tried[i], 'PING'); } catch (_) { return null; } },
          (v) => v === 'PONG' || v === 'exited', `redis-server on ${tried[i]} answers PING`)
          .then((v) => v === 'PONG')));
        if (ok.every(Boolean)) { procs = started; ports = tried; break; }
        for (const p of started) p.kill('SIGKILL'); // a port was taken: another base
      }
      if (!procs.length) throw new Error('no free ports for a Redis Cluster');
      execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas', String(replicas), '--cluster-yes'], { stdio: 'ignore' });
      // Ok everywhere, and every replica known as one everywhere.
      for (const port of ports) {
        await h.waitFor(() => cli(port, 'CLUSTER', 'INFO'), (v) => /cluster_state:ok/.test(v),
          `the cluster is ok on ${port}`, 20000);
        await h.waitFor(() => cli(port, 'CLUSTER', 'NODES').split('\n').filter((l) => (l.split(' ')[2] || '').split(',').includes('slave')).length,
          (k) => k === n * replicas, `${port} knows the ${n * replicas} replicas`, 20000);
      }
      // A replica that never synced cannot take its master's place.
      for (const port of ports) {
        await h.waitFor(() => cli(port, 'INFO', 'replication'),
          (v) => /role:master/.test(v) || /master_link_status:up/.test(v), `the replica on ${port} synced`, 20000);
      }
    },
    stopNow() {
      for (const p of procs) p.kill('SIGKILL');
      procs = [];
    },
    // What the instance on `port` printed.
    logs: (port) => procs[ports.indexOf(port)].out,
    // kill -9 of the instance on `port`; resolves once it is gone.
    kill(port) {
      const p = procs[ports.indexOf(port)];
      if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
      const gone = new Promise((res) => p.on('exit', res));
      p.kill('SIGKILL');
      return gone;
    },
    async stop() {
      const gone = procs.map((p) => new Promise((res) => (p.exitCode !== null ? res() : p.on('exit', res))));
      c.stopNow();
      await Promise.all(gone);
    },
    // The hash slot of a key or a channel, and the port of the master that
    // serves it now.
    slot: (name) => Number(cli(c.alive(), 'CLUSTER', 'KEYSLOT', name)),
    // The port of an instance still running.
    alive: () => ports.find((_, i) => procs[i].exitCode === null && procs[i].signalCode === null),
    masterOf(slot, at) {
      return c.map(at).find((m) => m.ranges.some(([a, b]) => slot >= a && slot <= b)).port;
    },
    // The masters serving slots: [{port, id, ranges: [[from, to], ...]}],
    // from CLUSTER NODES asked of `at` (by default one still running).
    map(at = c.alive()) {
      return cli(at, 'CLUSTER', 'NODES').split('\n').map((l) => l.split(' '))
        .filter((f) => f[2].split(',').includes('master') && !f[2].includes('fail') && f.length > 8).map((f) => {
        return { id: f[0], port: Number(f[1].split(':')[1].split('@')[0]),
          ranges: f.slice(8).filter((r) => !r.startsWith('[')).map((r) => r.split('-').map(Number))
            .map(([a, b]) => [a, b === undefined ? a : b]) };
      });
    },
    // Moves an empty slot (no keys: a channel's) to the master on `port` as
    // redis-cli's resharding does (importing, migrating, then the new owner
    // told to the target first, which bumps its epoch, then to the source
    // and the others); resolves once every instance agrees.
    async moveSlot(slot, port) {
      const masters = c.map();
      const to = masters.find((m) => m.port === port);
      const from = masters.find((m) => m.ranges.some(([a, b]) => slot >= a && slot <= b));
      cli(to.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', from.id);
      cli(from.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', to.id);
      cli(to.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
      cli(from.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
      for (const m of masters) {
        if (m !== to && m !== from) cli(m.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', to.id);
      }
      for (const p of ports) {
        await h.waitFor(() => c.masterOf(slot, p), (owner) => owner === port,
          `${p} knows slot ${slot} moved to ${port}`, 20000);
      }
    },
    // Subscribers of a sharded channel on its master (every node's).
    shardSubscribers(channel, at) {
      const port = c.masterOf(c.slot(channel), at);
      return Number(cli(port, 'PUBSUB', 'SHARDNUMSUB', channel).split('\n')[1]);
    },
  };
  return c;
}

module.exports = { REDIS, redisSkip, privateRedis, privateRedisCluster };
