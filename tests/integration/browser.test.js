// browser.test.js - the example chat page (examples/web), served by parley
// (PARLEY_STATIC) and driven in headless Chromium (Debian's package, through
// playwright-core): two users chat; each sees the other's messages, the
// typing indicator and presence; the sender's ticks turn from ✓ to grey ✓✓
// once delivered and blue ✓✓ once read - checked on screenshots of the
// ticks, pixel by pixel. And the page as a chat app (issue 21): the inbox
// with unread counts, a long conversation opened at its newest messages
// with older ones on scroll, read marking when a hidden tab is seen again,
// last seen, the connection's state.
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
      const p = await (await browser.newContext({ viewport: { width: 720, height: 640 } })).newPage();
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
    assert.equal(await bob.textContent('#messages li.theirs .text'), 'hello bob');

    // bob's page read it: ann's tick turns blue.
    const tick = await ann.waitForSelector('#messages li.mine .ticks.read');
    assert.equal(await tick.textContent(), '✓✓');
    const png = PNG.sync.read(await tick.screenshot());
    const blue = pixelsNear(png, [0x34, 0xb7, 0xf1], 60);
    assert.ok(blue >= 8, `the read ticks are not blue on screen (${blue} blue pixels)`);
    const whole = PNG.sync.read(await ann.screenshot());
    assert.deepEqual([whole.width, whole.height], [720, 640]);
    assert.ok(pixelsNear(whole, [0x07, 0x5e, 0x54]) > 1000, 'the header did not render');

    // A reload of ann's page brings the conversation back from the store.
    await ann.reload();
    await ann.waitForSelector('body[data-ready="true"]');
    assert.equal(await ann.textContent('#messages li.mine .text'), 'hello bob');
    assert.equal(await ann.textContent('#messages li.mine .ticks.read'), '✓✓');

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

test('the demo as a chat app: the inbox with last messages and unread counts, newest first with older on scroll, read when the tab is seen, names, times, ticks, typing, last seen, the connection state', {
  timeout: 90000,
}, async () => {
  assert.ok(ready, `needs ${CHROMIUM} and examples/web/node_modules: run bash tests/deps.sh --test (tests/run.sh does)`);
  const { chromium } = require('playwright-core');
  const KEY = 'browser-test-key';
  const srv = await h.startParley({ env: { PARLEY_STATIC: `/app=${WEB}`, PARLEY_API_KEY: KEY } });
  const api = async (method, p, body) => {
    const r = await fetch(`${srv.url}${p}`, { method, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status}`);
    return r.json();
  };
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  // Hides or shows a page as a background tab would be (headless pages are
  // always visible): the page sees document.visibilityState and the event.
  const setHidden = (p, hidden) => p.evaluate((on) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (on ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  const texts = (p, sel) => p.$$eval(sel, (els) => els.map((e) => e.textContent));
  try {
    await api('PUT', '/api/users/bob', { name: 'Bob Brown' });
    await api('PUT', '/api/conversations/long/members', { members: ['ann', 'bob'] });
    await api('PUT', '/api/conversations/other/members', { members: ['ann', 'cy'] });
    await api('POST', '/api/conversations/other/messages', { senderId: 'cy', type: 'text', content: 'lunch?' });
    for (let i = 1; i <= 110; i++) {
      await api('POST', '/api/conversations/long/messages', { senderId: 'bob', type: 'text', content: `n${i}` });
    }
    const open = async (me, peer, conversation) => {
      const p = await (await browser.newContext({ viewport: { width: 720, height: 640 } })).newPage();
      await p.goto(`${srv.url}/app/?me=${me}&peer=${peer}&conversation=${conversation}&page=20`);
      await p.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
      return p;
    };

    // ann opens on "other": the inbox lists "long" first (latest activity)
    // with 110 unread and bob's last message; "other", open and seen, is read.
    const ann = await open('ann', 'cy', 'other');
    assert.deepEqual(await ann.$$eval('#inbox li', (els) => els.map((e) => e.dataset.conversation)), ['long', 'other']);
    assert.equal(await ann.textContent('#inbox li[data-conversation="long"] .unread'), '110');
    assert.equal(await ann.textContent('#inbox li[data-conversation="long"] .preview'), 'Bob Brown: n110');
    await ann.waitForSelector('#inbox li[data-conversation="other"] .unread[hidden]', { state: 'attached' });
    assert.equal(await ann.getAttribute('#conn', 'class'), 'online');

    // Into "long": the newest 20, oldest first; scrolling up brings the rest.
    await ann.click('#inbox li[data-conversation="long"]');
    await ann.waitForFunction(() => document.querySelector('#messages li:last-child .text')?.textContent === 'n110');
    let shown = await texts(ann, '#messages li .text');
    assert.equal(shown.length >= 20 && shown.length < 110, true, `${shown.length} shown at first`);
    assert.equal(shown[shown.length - 1], 'n110');
    assert.equal(await ann.getAttribute('body', 'data-older'), 'more');
    while (await ann.getAttribute('body', 'data-older') === 'more') {
      const before = (await texts(ann, '#messages li .text')).length;
      await ann.$eval('#messages', (el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
      await ann.waitForFunction((n) => document.querySelectorAll('#messages li').length > n, before);
    }
    shown = await texts(ann, '#messages li .text');
    assert.deepEqual(shown, Array.from({ length: 110 }, (_, i) => `n${i + 1}`));
    // Names and times on each message; seen, so read: the badge goes.
    assert.equal(await ann.textContent('#messages li.theirs .who'), 'Bob Brown');
    assert.match(await ann.textContent('#messages li.theirs time'), /\d{1,2}:\d{2}/);
    await ann.waitForSelector('#inbox li[data-conversation="long"] .unread[hidden]', { state: 'attached' });

    // bob's page; ann's tab goes to the background.
    const bob = await open('bob', 'ann', 'long');
    await ann.waitForSelector('#presence.online');
    await setHidden(ann, true);
    await bob.type('#text', 'are you there?');
    await ann.waitForSelector('#typing:not([hidden])');
    assert.match(await ann.textContent('#typing'), /bob is typing/);
    await bob.press('#text', 'Enter');
    // Delivered to the hidden tab, not read: grey ticks, a badge of 1.
    const grey = await bob.waitForSelector('#messages li.mine .ticks.delivered');
    await ann.waitForSelector('#inbox li[data-conversation="long"] .unread:not([hidden])');
    assert.equal(await ann.textContent('#inbox li[data-conversation="long"] .unread'), '1');
    // (the name bob's socket connected with, which the message carries)
    assert.equal(await ann.textContent('#inbox li[data-conversation="long"] .preview'), 'bob: are you there?');
    const gpng = PNG.sync.read(await grey.screenshot());
    assert.ok(pixelsNear(gpng, [0x99, 0x99, 0x99], 60) >= 8, 'the delivered ticks are not grey on screen');
    assert.ok(pixelsNear(gpng, [0x34, 0xb7, 0xf1], 60) < 3, 'a hidden tab marked the message read');
    const annHidden = PNG.sync.read(await ann.screenshot());
    assert.ok(pixelsNear(annHidden, [0x25, 0xd3, 0x66], 30) > 20, 'no unread badge on ann\'s screen');
    // ann comes back to the tab: read, bob's ticks turn blue, the badge goes.
    await setHidden(ann, false);
    const blue = await bob.waitForSelector('#messages li.mine .ticks.read');
    assert.equal(await blue.getAttribute('title'), 'read');
    assert.ok(pixelsNear(PNG.sync.read(await blue.screenshot()), [0x34, 0xb7, 0xf1], 60) >= 8, 'the read ticks are not blue on screen');
    await ann.waitForSelector('#inbox li[data-conversation="long"] .unread[hidden]', { state: 'attached' });
    const bobShot = PNG.sync.read(await bob.screenshot());
    const annShot = PNG.sync.read(await ann.screenshot());
    for (const shot of [annShot, bobShot]) {
      assert.deepEqual([shot.width, shot.height], [720, 640]);
      assert.ok(pixelsNear(shot, [0x07, 0x5e, 0x54]) > 1000, 'the header did not render');
      assert.ok(pixelsNear(shot, [0x25, 0xd3, 0x66], 30) > 20, 'the connection indicator is not green');
    }
    assert.ok(pixelsNear(annShot, [0xdc, 0xf8, 0xc6], 10) < pixelsNear(bobShot, [0xdc, 0xf8, 0xc6], 10),
      'bob\'s own (green) bubbles are not on his screen');

    // bob goes: ann sees when he was last seen.
    await bob.context().close();
    await ann.waitForFunction(() => /last seen \d/.test(document.getElementById('presence').textContent), null, { timeout: 10000 });
    // The server goes: the indicator says so.
    await srv.stop();
    await ann.waitForSelector('#conn:not(.online)', { timeout: 10000 });
  } finally {
    await browser.close();
    await srv.stop();
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
