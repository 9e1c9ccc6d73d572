// browser.test.js - the example chat page (examples/web), served by parley
// (PARLEY_STATIC) and driven in headless Chromium (Debian's package, through
// playwright-core): two users chat; each sees the other's messages, the
// typing indicator and presence; the sender's ticks turn from ✓ to grey ✓✓
// once delivered and blue ✓✓ once read - checked on screenshots of the
// ticks, pixel by pixel.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PNG } = require('pngjs');
const h = require('./harness');

const CHROMIUM = '/usr/bin/chromium';
const WEB = path.join(h.ROOT, 'examples', 'web');
const ready = fs.existsSync(CHROMIUM) && fs.existsSync(path.join(WEB, 'node_modules', 'socket.io-client'));

// How many pixels of a PNG are close to an RGB colour.
function pixelsNear(png, [r, g, b], tolerance = 40) {
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.abs(png.data[i] - r) + Math.abs(png.data[i + 1] - g) + Math.abs(png.data[i + 2] - b) <= tolerance) n++;
  }
  return n;
}

test('two users chat in the example page in headless Chromium: messages, typing, presence, ticks turning blue', {
  timeout: 60000,
}, async () => {
  // Never a skip: a run without the browser would pass without testing it.
  assert.ok(ready, `needs ${CHROMIUM} and examples/web/node_modules: run bash tests/deps.sh --test (tests/run.sh does)`);
  const { chromium } = require('playwright-core');
  const srv = await h.startParley({ env: { PARLEY_STATIC: `/app=${WEB}` } });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = async (me, peer, conversation = 'web-demo') => {
      const p = await (await browser.newContext({ viewport: { width: 480, height: 640 } })).newPage();
      await p.goto(`${srv.url}/app/?me=${me}&peer=${peer}&conversation=${conversation}`);
      await p.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
      return p;
    };
    const ann = await page('ann', 'bob');
    const bob = await page('bob', 'ann');
    await ann.waitForSelector('#presence.online');   // bob came online after ann

    await ann.type('#text', 'hello bob');
    await bob.waitForSelector('#typing:not([hidden])');
    assert.match(await bob.textContent('#typing'), /ann is typing/);
    await ann.press('#text', 'Enter');
    await bob.waitForSelector('#messages li.theirs');
    assert.equal(await bob.textContent('#messages li.theirs'), 'hello bob');

    // bob's page read it: ann's tick turns blue.
    const tick = await ann.waitForSelector('#messages li.mine .ticks.read');
    assert.equal(await tick.textContent(), '✓✓');
    const png = PNG.sync.read(await tick.screenshot());
    const blue = pixelsNear(png, [0x34, 0xb7, 0xf1], 60);
    assert.ok(blue >= 8, `the read ticks are not blue on screen (${blue} blue pixels)`);
    const whole = PNG.sync.read(await ann.screenshot());
    assert.deepEqual([whole.width, whole.height], [480, 640]);
    assert.ok(pixelsNear(whole, [0x07, 0x5e, 0x54]) > 1000, 'the header did not render');

    // A reload of ann's page brings the conversation back from the store.
    await ann.reload();
    await ann.waitForSelector('body[data-ready="true"]');
    assert.equal(await ann.textContent('#messages li.mine'), 'hello bob✓✓');

    // bob leaves: after the grace period ann sees him offline.
    await bob.context().close();
    await ann.waitForSelector('#presence.offline', { timeout: 10000 });

    // carl (a socket.io client, not a page) only acknowledges delivery: ann's
    // tick turns grey ✓✓, and not blue.
    const carl = h.sioClient(srv, '/messages', { query: { userId: 'carl' } });
    await h.connected(carl);
    await carl.emitWithAck('conversation:join', { conversationId: 'web-grey' });
    carl.on('message:received', (m) => carl.emit('message:delivered',
      { conversationId: m.conversationId, messageIds: [m.messageId] }));
    const ann2 = await page('ann', 'carl', 'web-grey');
    await ann2.type('#text', 'hello carl');
    await ann2.press('#text', 'Enter');
    const grey = await ann2.waitForSelector('#messages li.mine .ticks.delivered');
    assert.equal(await grey.textContent(), '✓✓');
    const gpng = PNG.sync.read(await grey.screenshot());
    assert.ok(pixelsNear(gpng, [0x99, 0x99, 0x99], 60) >= 8, 'the delivered ticks are not grey on screen');
    assert.ok(pixelsNear(gpng, [0x34, 0xb7, 0xf1], 60) < 3, 'the delivered ticks are blue: shown as read');
    carl.disconnect();
  } finally {
    await browser.close();
    await srv.stop();
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
