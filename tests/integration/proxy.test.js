// proxy.test.js - the HAProxy and nginx configurations docs/deploy.md
// gives, run as written (only the certificate paths, the ports, the
// server's address and HAProxy's maxconn swapped for the test's) with
// Debian's HAProxy 2.6 and nginx 1.22: TLS terminated in front of parley,
// socket.io-client gets through on WebSocket, on long-polling and through
// the polling->WebSocket upgrade, and a plain WebSocket on /messages, each
// sending a message and getting its ack.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { io } = require('socket.io-client');
const WebSocket = require('ws');
const h = require('./harness');

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => fs.existsSync(p));
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
const procs = [];
const sockets = [];
test.after(() => {
  sockets.forEach((s) => s.close());
  procs.forEach((p) => { if (p.exitCode === null) p.kill('SIGKILL'); });
  h.cleanup();
});

// The ```haproxy or ```nginx block of docs/deploy.md.
function documentedConfig(kind) {
  const doc = fs.readFileSync(path.join(h.ROOT, 'docs', 'deploy.md'), 'utf8');
  const m = new RegExp('```' + kind + '\\n([\\s\\S]*?)```').exec(doc);
  assert.ok(m, `docs/deploy.md has no ${kind} block`);
  return m[1];
}

// A self-signed certificate and its key in one PEM file, as HAProxy takes it.
function certificate(dir) {
  const key = path.join(dir, 'key.pem');
  const crt = path.join(dir, 'crt.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
    '-out', crt, '-subj', '/CN=localhost', '-days', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const pem = path.join(dir, 'chat.pem');
  fs.writeFileSync(pem, fs.readFileSync(crt, 'utf8') + fs.readFileSync(key, 'utf8'));
  return pem;
}

// Starts a proxy (`argv`); resolves once it serves parley's /healthz over
// TLS on `port`.
async function startProxy(argv, port) {
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  await h.waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`${argv[0]} exited ${proc.exitCode}:\n${out}`);
    try { return (await fetch(`https://127.0.0.1:${port}/healthz`)).status; } catch (_) { return 0; }
  }, (s) => s === 200, `${argv[0]} serving parley's /healthz on ${port}`, 15000).catch((e) => { throw new Error(`${e.message}\n${out}`); });
  return { proc, logs: () => out };
}

// Through the proxy on `port`: socket.io-client on WebSocket, on polling
// and through the upgrade, and a plain WebSocket, each sending a message
// and getting its ack.
async function clientsGetThrough(port) {
  const url = `https://127.0.0.1:${port}/messages`;
  const send = async (s, id) => {
    const ack = await s.timeout(5000).emitWithAck('message:send', { conversationId: 'proxied', clientMessageId: id, type: 'text', content: id });
    assert.equal(ack.status, 'sent', `${id}: ${JSON.stringify(ack)}`);
  };
  for (const [name, transports] of [['websocket', ['websocket']], ['polling', ['polling']]]) {
    const s = io(url, { query: { userId: `p-${name}` }, transports, forceNew: true, reconnection: false, rejectUnauthorized: false });
    sockets.push(s);
    await h.connected(s);
    assert.equal(s.io.engine.transport.name, name);
    await send(s, name);
    s.close();
  }
  // The seed's client: polling first, then the upgrade to WebSocket.
  const up = io(url, { query: { userId: 'p-upgrade' }, forceNew: true, reconnection: false, rejectUnauthorized: false });
  sockets.push(up);
  await h.connected(up);
  if (up.io.engine.transport.name !== 'websocket') await h.once(up.io.engine, 'upgrade', 5000);
  assert.equal(up.io.engine.transport.name, 'websocket');
  await send(up, 'upgrade');
  up.close();

  const ws = h.frameQueue(new WebSocket(`wss://127.0.0.1:${port}/messages?userId=p-plain`, { rejectUnauthorized: false }), JSON.parse);
  sockets.push(ws);
  await ws.opened;
  ws.send(JSON.stringify({ event: 'message:send', ack: 1, data: { conversationId: 'proxied', clientMessageId: 'plain', type: 'text', content: 'plain' } }));
  const answer = await ws.next((f) => f.ack === 1, 5000);
  assert.equal(answer.data.status, 'sent', JSON.stringify(answer));
  ws.close();
}

test('the HAProxy config of docs/deploy.md passes WebSocket, long-polling, the upgrade and the plain endpoint through, over TLS', { skip: !HAPROXY && 'haproxy is not installed (tests/deps.sh --test installs it)', timeout: 60000 }, async () => {
  // Node's fetch trusts the test's own certificate only this way.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const srv = await h.startParley();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-proxy-'));
  const port = await h.freePort();
  const doc = documentedConfig('haproxy');
  const config = doc
    .replace(/bind :443 ssl crt \S+/, `bind 127.0.0.1:${port} ssl crt ${certificate(dir)}`)
    .replace(/server parley1 127\.0\.0\.1:3000/, `server parley1 127.0.0.1:${srv.port}`)
    // This machine's open-files limit (20,000) is below what 50,000
    // connections need; the rest stays as written.
    .replace(/maxconn \d+/, 'maxconn 2000');
  assert.match(config, /ssl crt .*chat\.pem/);
  assert.match(config, new RegExp(`127\\.0\\.0\\.1:${srv.port}`));
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, config);
  const check = spawnSync(HAPROXY, ['-c', '-f', file], { encoding: 'utf8' });
  assert.equal(check.status, 0, `haproxy -c:\n${check.stdout}${check.stderr}`);
  const proxy = await startProxy([HAPROXY, '-db', '-f', file], port);
  await clientsGetThrough(port);
  proxy.proc.kill('SIGTERM');
  await srv.stop();
});

test('the nginx config of docs/deploy.md passes WebSocket, long-polling, the upgrade and the plain endpoint through, over TLS', { skip: !NGINX && 'nginx is not installed (tests/deps.sh --test installs it)', timeout: 60000 }, async () => {
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const srv = await h.startParley();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-proxy-'));
  const port = await h.freePort();
  const pem = certificate(dir);
  const doc = documentedConfig('nginx');
  const site = doc
    .replace(/listen 443 ssl;/, `listen 127.0.0.1:${port} ssl;`)
    .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${pem};`)
    .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${path.join(dir, 'key.pem')};`)
    .replace(/server 127\.0\.0\.1:3000;/, `server 127.0.0.1:${srv.port};`);
  assert.match(site, new RegExp(`listen 127\\.0\\.0\\.1:${port} ssl;`));
  assert.match(site, new RegExp(`server 127\\.0\\.0\\.1:${srv.port};`));
  // The site is an http block's content, as in /etc/nginx/sites-enabled;
  // around it, what a private nginx needs to run in the foreground.
  const tmpPaths = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${path.join(dir, t)};`).join('\n  ');
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, `daemon off;\nmaster_process off;\npid ${path.join(dir, 'nginx.pid')};\nerror_log stderr warn;\n` +
    `events { worker_connections 1024; }\nhttp {\n  access_log off;\n  ${tmpPaths}\n${site}\n}\n`);
  const check = spawnSync(NGINX, ['-t', '-c', file, '-p', dir], { encoding: 'utf8' });
  assert.equal(check.status, 0, `nginx -t:\n${check.stdout}${check.stderr}`);
  const proxy = await startProxy([NGINX, '-c', file, '-p', dir], port);
  await clientsGetThrough(port);
  proxy.proc.kill('SIGTERM');
  await srv.stop();
});
