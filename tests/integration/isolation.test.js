// isolation.test.js - each script and plugin runs in an environment of its
// own (STYLE.md 12): a plugin that patches string, table or math changes its
// own copies only; parley and its sub-tables are read-only to it (even
// rawset changes only its own view); getmetatable() of a string, a socket or
// a JSON array gives it nothing to patch. Another plugin (tests/plugins/
// observer), the default scripts (message:send through scripts/messages.lua,
// typing:start through scripts/chat.lua) and the patcher's own next version
// (after a reload) see none of it.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const parley = require('../harness/parley-testing');
const h = require('./harness');

const TEST_PLUGINS = path.join(h.ROOT, 'tests', 'plugins');

// What a module sees when nothing has been patched.
const PRISTINE = {
  upper: 'ABC', method: 'ABC', find: 2, concat: 'a-b', floor: 1, now: 'number', encode: '[1]',
  send: 'function', hasNext: true, stringMeta: 'false', arrayPatched: false, emitted: true,
};

function pristine(seen) {
  const picked = Object.fromEntries(Object.keys(PRISTINE).map((k) => [k, seen[k]]));
  assert.deepEqual(picked, PRISTINE, `what the observer sees: ${JSON.stringify(seen)}`);
  assert.ok(seen.storeKeys >= 10, `pairs(parley.store) saw ${seen.storeKeys} functions`);
  assert.ok(seen.pingInterval > 0, `parley.settings.ping_interval is ${seen.pingInterval}`);
}

test('a plugin that patches string, table, math, parley, its sub-tables and the shared metatables changes nothing for the other plugins, the default scripts or its own next version', { timeout: 30000 }, async () => {
  const srv = await parley.start({ plugins: ['testkit', 'patcher', 'observer'], pluginPath: [TEST_PLUGINS],
    env: { PARLEY_WATCH: '0' } });
  try {
    const ann = await srv.client('iso-ann');
    const bob = await srv.client('iso-bob');
    await ann.join('iso');
    await bob.join('iso');
    pristine(await ann.request('observe:get'));

    const { results, mine } = await ann.request('patch:apply');
    // Its own copies of the standard library are its to change (and rawset
    // below changed its own view of parley.now: a string now)...
    for (const name of ['string.upper', 'table.concat', 'math.floor']) assert.equal(results[name], 'done', name);
    assert.deepEqual(mine, { upper: 'patched', concat: 'patched', floor: 'patched', now: 'string' });
    // ...parley is not: a plain assignment is refused with a message,
    assert.match(results['parley.now'], /patcher\/init\.lua:\d+: parley is read-only \(setting now\)/);
    assert.match(results['parley.store.send'], /parley\.store is read-only/);
    assert.match(results['parley.json.encode'], /parley\.json is read-only/);
    // and rawset reaches the patcher's own view only.
    assert.equal(results['rawset(parley, now)'], 'done');
    assert.equal(results['rawset(parley.store, send)'], 'done');
    assert.equal(results['rawset(parley.settings, ping_interval)'], 'done');
    // The metatables every module's values go through are not handed out.
    for (const name of ["getmetatable('').__index.upper", 'getmetatable(sock).emit', 'array metatable']) {
      assert.match(results[name], /attempt to index a boolean value/, name);
    }
    assert.match(results["rawset(getmetatable(''), __index)"], /bad argument #1 to 'rawset' \(table expected, got boolean\)/);
    assert.match(results['sock.emit'], /sock\.emit belongs to the server/);
    assert.match(results['setmetatable(sock)'], /cannot change a protected metatable/);
    assert.equal(results['parley.of(nsp).emit'], 'done', 'parley.of gave the patcher an object of its own');

    // Another plugin sees the real thing, and the socket still works...
    pristine(await ann.request('observe:get'));
    assert.deepEqual(await ann.next('observe:emitted'), { ok: true });
    // ...so do the default scripts: messages.lua's store.send and the
    // room broadcast, chat.lua's parley.now and sock:to.
    const sent = await ann.request('message:send', { conversationId: 'iso', clientMessageId: 'iso-1', type: 'text', content: 'still here' });
    assert.equal(sent.status, 'sent', JSON.stringify(sent));
    assert.match(sent.messageId, /^[0-9a-f]{16}$/);
    assert.equal((await bob.next('message:received')).content, 'still here');
    assert.deepEqual(await ann.request('typing:start', { conversationId: 'iso' }), { success: true });
    assert.equal((await bob.next('typing:start')).userId, 'iso-ann');

    // The patcher's next version starts from pristine copies.
    await srv.reload();
    assert.deepEqual(await ann.request('patch:mine'), { upper: 'ABC', concat: 'a-b', floor: 1, now: 'number' });
    pristine(await bob.request('observe:get'));
  } finally {
    await srv.stop();
  }
});

// Whatever a failed test left running is stopped, after the hooks above.
require('node:test').after(require('./harness').cleanup);
