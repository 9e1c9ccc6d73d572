// The pins plugin of the tutorial (examples/README.md), tested as the
// tutorial's last step does: bash tests/plugin-test.sh examples/plugins/pins
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const parley = require('parley-testing');

test('pin, see it pinned by everyone in the conversation, list, unpin; a fourth pin is refused', async () => {
  const srv = await parley.start({ plugins: ['pins'], pluginPath: [path.join(__dirname, '..', '..')] });
  try {
    const ann = await srv.client('ann');
    const bob = await srv.client('bob');
    await ann.join('team');
    await bob.join('team');
    const ids = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await ann.request('message:send', { conversationId: 'team', type: 'text', content: `m${i}` })).messageId);
    }
    await ann.request('pin:add', { conversationId: 'team', messageId: ids[0] });
    assert.deepEqual(await bob.next('pin:added'), { conversationId: 'team', messageId: ids[0], by: 'ann' });
    await ann.request('pin:add', { conversationId: 'team', messageId: ids[1] });
    await ann.request('pin:add', { conversationId: 'team', messageId: ids[2] });
    assert.equal((await ann.request('pin:add', { conversationId: 'team', messageId: ids[3] })).statusCode, 409);
    assert.deepEqual(await bob.request('pin:list', { conversationId: 'team' }), { pins: ids.slice(0, 3) });
    await bob.request('pin:remove', { conversationId: 'team', messageId: ids[1] });
    assert.deepEqual(await ann.request('pin:list', { conversationId: 'team' }), { pins: [ids[0], ids[2]] });
    assert.equal((await ann.request('pin:add', { conversationId: 'team', messageId: 'ffffffffffffffff' })).statusCode, 404);
    // Several arguments each way: (conversationId, messageId) in,
    // (err, pinned, position) back.
    assert.deepEqual(await bob.requestArgs('pin:check', 'team', ids[2]), [null, true, 2]);
    assert.deepEqual(await bob.requestArgs('pin:check', 'team', ids[1]), [null, false]);
    assert.deepEqual(await bob.requestArgs('pin:check', 'team'), ['conversationId and messageId are required']);
  } finally {
    await srv.stop();
  }
});

test('a conversation with registered members: a non-member can neither pin, unpin nor list its pins (403), and learns nothing of them', async () => {
  const key = 'pins-test-key';
  const srv = await parley.start({ plugins: ['pins'], pluginPath: [path.join(__dirname, '..', '..')], env: { PARLEY_API_KEY: key } });
  try {
    const r = await fetch(`${srv.url}/api/conversations/private/members`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ members: ['ann', 'bob'] }),
    });
    assert.equal(r.status, 200);
    const ann = await srv.client('ann');
    const eve = await srv.client('eve');
    const { messageId } = await ann.request('message:send', { conversationId: 'private', type: 'text', content: 'secret' });
    assert.deepEqual(await ann.request('pin:add', { conversationId: 'private', messageId }), { pins: [messageId] });
    for (const [event, payload] of [
      ['pin:add', { conversationId: 'private', messageId }],
      ['pin:remove', { conversationId: 'private', messageId }],
      ['pin:list', { conversationId: 'private' }],
      // Not even whether a message is there: the same 403 for one that is not.
      ['pin:add', { conversationId: 'private', messageId: 'ffffffffffffffff' }],
    ]) {
      const refused = await eve.request(event, payload);
      assert.equal(refused.statusCode, 403, `${event}: ${JSON.stringify(refused)}`);
    }
    // pin:check answers error first, and tells a non-member nothing either.
    assert.deepEqual(await eve.requestArgs('pin:check', 'private', messageId), ['not a member of this conversation']);
    assert.deepEqual(await ann.requestArgs('pin:check', 'private', messageId), [null, true, 1]);
    // Nothing changed: the member still sees the one pin.
    assert.deepEqual(await ann.request('pin:list', { conversationId: 'private' }), { pins: [messageId] });
    assert.equal((await ann.request('pin:add', { conversationId: 'private' })).statusCode, 400);
  } finally {
    await srv.stop();
  }
});

test('the tutorial\'s hot-reload step: raising MAX_PINS in the file takes effect without a restart', async () => {
  // A copy of the plugin to edit, as the reader does.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pins-'));
  fs.cpSync(path.join(__dirname, '..'), path.join(dir, 'pins'), { recursive: true });
  const file = path.join(dir, 'pins', 'init.lua');
  const srv = await parley.start({ plugins: ['pins'], pluginPath: [dir] });
  try {
    const ann = await srv.client('ann');
    await ann.join('c');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await ann.request('message:send', { conversationId: 'c', type: 'text', content: `${i}` })).messageId);
    for (let i = 0; i < 3; i++) await ann.request('pin:add', { conversationId: 'c', messageId: ids[i] });
    assert.equal((await ann.request('pin:add', { conversationId: 'c', messageId: ids[3] })).statusCode, 409);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('local MAX_PINS = 3', 'local MAX_PINS = 5'));
    let r;
    for (let i = 0; i < 50; i++) {
      r = await ann.request('pin:add', { conversationId: 'c', messageId: ids[3] });
      if (!r.statusCode) break;
      await parley.sleep(50);
    }
    assert.equal(r.pins.length, 4, 'the edited plugin did not take over');
  } finally {
    await srv.stop();
  }
});
