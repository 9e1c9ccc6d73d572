// calls: invite, ring every device, accept on one (the others hear it was
// answered elsewhere), relay offer/answer/ICE to the other party only,
// reject, end, missed, busy, and a party's disconnect ending the call.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const parley = require('parley-testing');

let srv;
test.before(async () => {
  srv = await parley.start({ plugins: ['calls'],
    config: '{ plugin_config = { calls = { ring_ms = 1000, sweep_ms = 50 } } }' });
});
test.after(() => srv.stop());
test.after(parley.cleanup); // last: whatever a failed test left running

test('invite rings every device of the callee; accept on one: the caller hears, the other device is answered elsewhere; signals go to the other party only', async () => {
  const caller = await srv.client('alice');
  const phone = await srv.client('bob');
  const laptop = await srv.client('bob');
  const eve = await srv.client('eve');
  const { callId } = await caller.request('call:invite', { toUserId: 'bob', kind: 'video' });
  assert.equal(typeof callId, 'string');
  for (const dev of [phone, laptop]) {
    const inc = await dev.next('call:incoming');
    assert.deepEqual({ callId: inc.callId, kind: inc.kind, from: inc.from.id }, { callId, kind: 'video', from: 'alice' });
  }
  assert.deepEqual(await phone.request('call:accept', { callId }), { success: true });
  assert.deepEqual(await caller.next('call:accepted'), { callId, userId: 'bob' });
  assert.deepEqual(await laptop.next('call:answered-elsewhere'), { callId });

  await caller.request('call:offer', { callId, sdp: 'v=0 offer' });
  assert.deepEqual(await phone.next('call:offer'), { callId, sdp: 'v=0 offer', from: 'alice' });
  await phone.request('call:answer', { callId, sdp: 'v=0 answer' });
  assert.deepEqual(await caller.next('call:answer'), { callId, sdp: 'v=0 answer', from: 'bob' });
  await phone.request('call:ice-candidate', { callId, candidate: { c: 1 } });
  assert.deepEqual((await caller.next('call:ice-candidate')).candidate, { c: 1 });
  assert.equal(await laptop.none('call:offer', 200), true, 'the other device got the offer');
  assert.equal(await eve.none('call:incoming', 10), true);

  // Outsiders and the device that did not answer cannot signal into it.
  assert.equal((await eve.request('call:offer', { callId, sdp: 'x' })).statusCode, 403);
  assert.equal((await laptop.request('call:ice-candidate', { callId, candidate: {} })).statusCode, 403);

  await phone.request('call:end', { callId });
  assert.deepEqual(await caller.next('call:ended'), { callId, reason: 'ended', by: 'bob' });
  assert.equal((await caller.request('call:offer', { callId, sdp: 'late' })).statusCode, 404);
});

test('nobody answers within ring_ms: caller and callee get call:missed', async () => {
  const a = await srv.client('m-caller');
  const b = await srv.client('m-callee');
  const { callId } = await a.request('call:invite', { toUserId: 'm-callee', kind: 'voice' });
  await b.next('call:incoming');
  assert.equal((await a.next('call:missed', 3000)).callId, callId);
  assert.equal((await b.next('call:missed', 3000)).callId, callId);
});

test('a busy callee answers call:busy; a rejected call tells the caller', async () => {
  const a = await srv.client('b-a');
  const b = await srv.client('b-b');
  const c = await srv.client('b-c');
  const first = await a.request('call:invite', { toUserId: 'b-b', kind: 'voice' });
  await b.next('call:incoming');
  const second = await c.request('call:invite', { toUserId: 'b-b', kind: 'voice' });
  assert.equal(second.busy, true);
  assert.deepEqual(await c.next('call:busy'), { callId: second.callId, userId: 'b-b' });
  assert.deepEqual(await b.request('call:reject', { callId: first.callId }), { success: true });
  assert.deepEqual(await a.next('call:rejected'), { callId: first.callId, userId: 'b-b' });
});

test('a party\'s disconnect ends the call for the other; a conversation rings its other members', async () => {
  const a = await srv.client('d-a');
  const b = await srv.client('d-b');
  await a.join('call-room');
  await b.join('call-room');
  const { callId } = await a.request('call:invite', { conversationId: 'call-room', kind: 'screen' });
  assert.equal((await b.next('call:incoming')).conversationId, 'call-room');
  await b.request('call:accept', { callId });
  await a.next('call:accepted');
  a.close();
  assert.deepEqual(await b.next('call:ended'), { callId, reason: 'disconnected', by: 'd-a' });
  assert.equal((await b.request('call:invite', { kind: 'fax', toUserId: 'x' })).statusCode, 400);
});

test('the callee\'s disconnect ends an active call for the caller; a caller who leaves while it rings stops every ringing device', async () => {
  const a = await srv.client('e-a');
  const b = await srv.client('e-b');
  const { callId } = await a.request('call:invite', { toUserId: 'e-b', kind: 'voice' });
  await b.next('call:incoming');
  await b.request('call:accept', { callId });
  await a.next('call:accepted');
  b.close();
  assert.deepEqual(await a.next('call:ended'), { callId, reason: 'disconnected', by: 'e-b' });
  // The call is over: both are free to call again.
  const c = await srv.client('e-c');
  const phone = await srv.client('e-d');
  const laptop = await srv.client('e-d');
  const again = await a.request('call:invite', { toUserId: 'e-d', kind: 'video' });
  assert.equal(again.busy, undefined, JSON.stringify(again));
  await phone.next('call:incoming');
  await laptop.next('call:incoming');
  a.close();
  for (const dev of [phone, laptop]) {
    assert.deepEqual(await dev.next('call:ended'), { callId: again.callId, reason: 'disconnected', by: 'e-a' });
  }
  assert.equal(await c.none('call:ended', 100), true, 'a bystander heard the call end');
});
