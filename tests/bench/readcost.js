// readcost.js - what one conversation:read by a user who was never a
// recipient costs (issue 15, item 8): a sender fills an open conversation
// with large messages, then a new user reads it all while a bystander
// measures its round trips. Prints the data file's growth, the time to the
// read's ack and the bystander's round trips during it.
//
//   node tests/bench/readcost.js [--bin build/parley] [--messages 1000] [--size 60000]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const h = require('../integration/harness');

function args() {
  const a = { bin: process.env.PARLEY_BIN || path.join(h.ROOT, 'build', 'parley'), messages: 1000, size: 60000 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, '')] = v[i + 1];
  a.messages = Number(a.messages);
  a.size = Number(a.size);
  return a;
}

function median(xs) {
  const v = [...xs].sort((x, y) => x - y);
  return v.length ? v[v.length >> 1] : NaN;
}

async function main() {
  const a = args();
  process.env.PARLEY_BIN = a.bin;
  // The harness reads PARLEY_BIN when it is loaded: load it again.
  delete require.cache[require.resolve('../integration/harness')];
  const hb = require('../integration/harness');
  const srv = await hb.startParley({ env: { PARLEY_PLUGINS: '' } });
  const file = path.join(srv.dataDir, 'data.mdb');
  try {
    const sender = hb.sioClient(srv, '/messages', { query: { userId: 'sender' }, transports: ['websocket'] });
    const reader = hb.sioClient(srv, '/messages', { query: { userId: 'new-reader' }, transports: ['websocket'] });
    const bystander = hb.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
    await Promise.all([hb.connected(sender), hb.connected(reader), hb.connected(bystander)]);
    const body = 'x'.repeat(a.size);
    const window = 16;
    for (let i = 0; i < a.messages; i += window) {
      const sends = [];
      for (let k = i; k < Math.min(i + window, a.messages); k++) {
        sends.push(sender.timeout(10000).emitWithAck('message:send',
          { conversationId: 'history', clientMessageId: `h${k}`, type: 'text', content: `${k} ${body}` }));
      }
      for (const ack of await Promise.all(sends)) {
        if (ack.status !== 'sent') throw new Error(`a send failed: ${JSON.stringify(ack)}`);
      }
    }
    const before = fs.statSync(file).size;

    // The bystander asks for presence in a loop while the read runs.
    let reading = true;
    const rtts = [];
    const probe = (async () => {
      while (reading) {
        const t = process.hrtime.bigint();
        await bystander.timeout(10000).emitWithAck('presence:query', { userIds: ['sender'] });
        rtts.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    })();
    const t0 = process.hrtime.bigint();
    const ack = await reader.timeout(60000).emitWithAck('conversation:read', { conversationId: 'history' });
    const readMs = Number(process.hrtime.bigint() - t0) / 1e6;
    reading = false;
    await probe;
    const after = fs.statSync(file).size;
    console.log(`binary=${a.bin} messages=${a.messages} size=${a.size} updated=${ack.updated}`);
    console.log(`data.mdb before=${before} after=${after} growth=${after - before} ` +
      `(${((after - before) / before * 100).toFixed(1)}%)`);
    console.log(`conversation:read ack_ms=${readMs.toFixed(1)} bystander_rtt_ms median=` +
      `${median(rtts).toFixed(2)} max=${Math.max(...rtts).toFixed(2)} samples=${rtts.length}`);
    sender.close();
    reader.close();
    bystander.close();
  } finally {
    await srv.stop();
    fs.rmSync(srv.dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
