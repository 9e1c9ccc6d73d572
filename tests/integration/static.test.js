// static.test.js - PARLEY_STATIC serves the files inside its folder and
// nothing that resolves outside it: a symlink to a file or a folder outside
// is refused (404), logged and counted; a symlink that stays inside, written
// relative, is served; a FIFO is not opened (it would hold the loop).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

let srv;
let tmp;

async function metric(name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

async function get(p) {
  const r = await fetch(`${srv.url}${p}`);
  return { status: r.status, body: await r.text() };
}

test.before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-static-'));
  const web = path.join(tmp, 'web');
  const outside = path.join(tmp, 'outside');
  fs.mkdirSync(path.join(web, 'sub'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(web, 'index.html'), '<p>index</p>');
  fs.writeFileSync(path.join(web, 'inside.txt'), 'inside');
  fs.writeFileSync(path.join(web, 'sub', 'deep.txt'), 'deep');
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'SECRET-OUTSIDE');
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(web, 'abs-out.txt'));
  fs.symlinkSync('../outside/secret.txt', path.join(web, 'rel-out.txt'));
  fs.symlinkSync(outside, path.join(web, 'dir-out'));
  fs.symlinkSync('../../outside', path.join(web, 'sub', 'up-out'));
  fs.symlinkSync('inside.txt', path.join(web, 'link-in.txt'));
  fs.symlinkSync('../inside.txt', path.join(web, 'sub', 'link-up-in.txt'));
  fs.symlinkSync('sub', path.join(web, 'dir-in'));
  fs.symlinkSync(path.join(web, 'inside.txt'), path.join(web, 'abs-in.txt'));
  assert.equal(spawnSync('mkfifo', [path.join(web, 'pipe.txt')]).status, 0, 'mkfifo');
  srv = await h.startParley({ env: { PARLEY_STATIC: `/app=${web}` } });
});

test.after(async () => {
  if (srv) assert.equal((await srv.stop()).code, 0);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('files inside the folder are served, through relative symlinks that stay inside too', async () => {
  assert.deepEqual(await get('/app/inside.txt'), { status: 200, body: 'inside' });
  assert.deepEqual(await get('/app/'), { status: 200, body: '<p>index</p>' });
  assert.deepEqual(await get('/app/sub/deep.txt'), { status: 200, body: 'deep' });
  assert.deepEqual(await get('/app/link-in.txt'), { status: 200, body: 'inside' });
  assert.deepEqual(await get('/app/sub/link-up-in.txt'), { status: 200, body: 'inside' });
  assert.deepEqual(await get('/app/dir-in/deep.txt'), { status: 200, body: 'deep' });
});

test('a symlink that resolves outside the folder is refused with 404, logged and counted', async () => {
  const counted = 'parley_protocol_errors_total{kind="static_outside_folder"}';
  const before = await metric(counted);
  const refused = ['/app/abs-out.txt', '/app/rel-out.txt', '/app/dir-out/secret.txt', '/app/sub/up-out/secret.txt',
    '/app/dir-out/'];
  for (const p of refused) {
    const r = await get(p);
    assert.equal(r.status, 404, `${p}: ${r.status} ${r.body}`);
    assert.doesNotMatch(r.body, /SECRET/, p);
  }
  assert.equal(await metric(counted), before + refused.length);
  assert.match(srv.logs(), /static file "abs-out\.txt" resolves outside the folder \(PARLEY_STATIC\): refused, 404/);
  assert.match(srv.logs(), /static file "dir-out\/secret\.txt" resolves outside the folder/);
});

test('an absolute symlink is refused even when it points inside (write links relative)', async () => {
  assert.equal((await get('/app/abs-in.txt')).status, 404);
});

test('a FIFO in the folder is not opened (open would wait for a writer and hold the loop): 404', async () => {
  const r = await get('/app/pipe.txt');
  assert.equal(r.status, 404);
  assert.ok(await metric('parley_protocol_errors_total{kind="static_not_a_file"}') >= 1);
  assert.deepEqual(await get('/app/inside.txt'), { status: 200, body: 'inside' });
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
