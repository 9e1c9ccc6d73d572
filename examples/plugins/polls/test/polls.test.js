// The polls example plugin, tested the way any plugin author would:
// `bash tests/plugin-test.sh examples/plugins/polls`.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const parley = require('parley-testing');

let srv;
test.before(async () => {
  srv = await parley.start({ plugins: ['polls'], pluginPath: [path.join(__dirname, '..', '..')],
    config: '{ plugin_config = { polls = { max_options = 3 } } }' });
});
test.after(() => srv.stop());
test.after(parley.cleanup); // last: whatever a failed test left running

test('a poll is created for the conversation, votes are counted one per user, everyone in the room sees the counts', async () => {
  const ann = await srv.client('ann');
  const bob = await srv.client('bob');
  await ann.join('team');
  await bob.join('team');
  const { pollId } = await ann.request('poll:create',
    { conversationId: 'team', question: 'Lunch?', options: ['pizza', 'salad'] });
  assert.equal(typeof pollId, 'string');
  assert.deepEqual((await bob.next('poll:created')).options, ['pizza', 'salad']);

  assert.deepEqual(await bob.request('poll:vote', { pollId, option: 1 }), { counts: [1, 0] });
  assert.deepEqual((await ann.next('poll:updated')).counts, [1, 0]);
  // A second vote by the same user replaces the first.
  assert.deepEqual(await bob.request('poll:vote', { pollId, option: 2 }), { counts: [0, 1] });
  assert.deepEqual(await ann.request('poll:vote', { pollId, option: 2 }), { counts: [0, 2] });
  assert.deepEqual((await bob.request('poll:get', { pollId })).counts, [0, 2]);
  // Outside the conversation, the poll is as absent as an unknown one.
  const dee = await srv.client('dee');
  assert.equal((await dee.request('poll:get', { pollId })).statusCode, 404);
  assert.equal((await dee.request('poll:vote', { pollId, option: 1 })).statusCode, 403);
});

test('the plugin\'s configuration and checks: 3 options at most, members only, known polls only', async () => {
  const cy = await srv.client('cy');
  await cy.join('room-2');
  const tooMany = await cy.request('poll:create', { conversationId: 'room-2', question: 'q', options: ['a', 'b', 'c', 'd'] });
  assert.equal(tooMany.statusCode, 400);
  assert.match(tooMany.message, /2 to 3/);
  const outsider = await cy.request('poll:create', { conversationId: 'not-joined', question: 'q', options: ['a', 'b'] });
  assert.equal(outsider.statusCode, 403);
  assert.equal((await cy.request('poll:vote', { pollId: 'nope', option: 1 })).statusCode, 404);
});
