// listen.test.js - where parley listens (issue 20, item 2): PARLEY_BIND
// puts the main port on one address, PARLEY_METRICS_ADDR serves /metrics
// on an address:port of its own (and no longer on the main port), and
// settings that name no address stop parley at start, saying which.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const h = require('./harness');

// Whether a TCP connect to host:port succeeds.
function reachable(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// Whether this host has IPv6 loopback at all (a listener on ::1 works).
function hasIpv6() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(0, '::1', () => srv.close(() => resolve(true)));
  });
}

test('PARLEY_METRICS_ADDR: /metrics on its own address:port, 404 for other paths there, and a 404 on the main port', async () => {
  const mport = await h.freePort();
  const srv = await h.startParley({ env: { PARLEY_METRICS_ADDR: `127.0.0.1:${mport}` } });
  try {
    const r = await fetch(`http://127.0.0.1:${mport}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    assert.match(await r.text(), /^parley_sockets 0$/m);
    assert.equal((await fetch(`http://127.0.0.1:${mport}/api/users/online`)).status, 404);
    const main = await fetch(`${srv.url}/metrics`);
    assert.equal(main.status, 404);
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    // A scraper that sends half a head and stops holds nothing: others are served.
    const idle = net.connect({ host: '127.0.0.1', port: mport });
    await new Promise((resolve) => idle.once('connect', resolve));
    idle.write('GET /metr');
    assert.equal((await fetch(`http://127.0.0.1:${mport}/metrics`)).status, 200);
    idle.destroy();
    assert.match(srv.logs(), new RegExp(`metrics on 127\\.0\\.0\\.1:${mport}`));
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('PARLEY_BIND=127.0.0.1: the main port answers there and not on the IPv6 loopback', async (t) => {
  const srv = await h.startParley({ env: { PARLEY_BIND: '127.0.0.1' } });
  try {
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    if (!(await hasIpv6())) {
      t.diagnostic('no IPv6 loopback on this host: the ::1 half is not checked');
      return;
    }
    assert.equal(await reachable('::1', srv.port), false);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('without PARLEY_BIND the main port answers on both loopbacks (the control for the test above)', async (t) => {
  const srv = await h.startParley({});
  try {
    if (!(await hasIpv6())) {
      t.diagnostic('no IPv6 loopback on this host');
      return;
    }
    assert.equal(await reachable('::1', srv.port), true);
    assert.equal(await reachable('127.0.0.1', srv.port), true);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

for (const [name, value, expect] of [
  ['PARLEY_BIND', 'not-an-address', /PARLEY_BIND \(file key bind\): "not-an-address" is not an IPv4 or IPv6 address/],
  ['PARLEY_METRICS_ADDR', '127.0.0.1', /PARLEY_METRICS_ADDR \(file key metrics_addr\): expected address:port/],
  ['PARLEY_METRICS_ADDR', '127.0.0.1:0', /PARLEY_METRICS_ADDR .*expected address:port .*got "127\.0\.0\.1:0"/],
  ['PARLEY_METRICS_ADDR', 'example:9100', /PARLEY_METRICS_ADDR .*got "example:9100"/],
]) {
  test(`${name}=${value} stops parley at start with a line saying why`, async () => {
    const p = await h.spawnParley({ env: { [name]: value } });
    const st = await p.exited;
    assert.notEqual(st.code, 0, p.logs());
    assert.match(p.logs(), expect);
  });
}
