// guard-stall.js - what one looping handler costs everyone else (issue 20,
// item 4; docs/benchmarks.md, "One script against everyone"). A bystander
// sends test:echo and waits for its ack, every 20 ms, for SECONDS; an
// offender emits test:spin (the testkit plugin's `while true do end`) every
// 300 ms, and when it is disconnected it connects again at once, as an
// attacker would. Prints the bystander's ack latency: p50, p99 and max over
// the whole run, over its first 5 s and over the rest, and what stopped the
// offender.
//   PARLEY_BIN=build/parley node tests/bench/guard-stall.js [SECONDS] [none]
'use strict';
const path = require('node:path');
const h = require(path.join(__dirname, '..', 'integration', 'harness'));

const SECONDS = Number(process.argv[2] || 20);
// "none": no offender, the bystander alone (the baseline).
const NO_OFFENDER = process.argv[3] === 'none';

function pct(list, p) {
  if (!list.length) return NaN;
  const s = [...list].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
}

function line(what, list) {
  const f = (v) => v.toFixed(1);
  return `${what}: n=${list.length} p50=${f(pct(list, 0.5))} ms p99=${f(pct(list, 0.99))} ms max=${f(Math.max(...list))} ms`;
}

async function main() {
  const srv = await h.startParley({ env: { PARLEY_LOG: 'warn' } });
  const bystander = h.sioClient(srv, '/messages', { query: { userId: 'bystander' }, transports: ['websocket'] });
  await h.connected(bystander);
  const start = Date.now();
  const end = start + SECONDS * 1000;
  let connects = 0;
  const answers = {};
  let offender = null;
  async function connectOffender() {
    if (Date.now() >= end) return;
    connects++;
    const s = h.sioClient(srv, '/messages', { query: { userId: 'offender' }, transports: ['websocket'] });
    s.on('disconnect', () => { setImmediate(connectOffender); });
    await h.connected(s);
    offender = s;
  }
  if (!NO_OFFENDER) await connectOffender();
  const spin = setInterval(() => {
    if (offender && offender.connected) {
      offender.emit('test:spin', {}, (a) => {
        const k = a && a.statusCode ? String(a.statusCode) : 'other';
        answers[k] = (answers[k] || 0) + 1;
      });
    }
  }, 300);
  const early = [];
  const late = [];
  while (Date.now() < end) {
    const t0 = process.hrtime.bigint();
    await bystander.timeout(10000).emitWithAck('test:echo', 1);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    (Date.now() - start < 5000 ? early : late).push(ms);
    await h.sleep(20);
  }
  clearInterval(spin);
  const stopped = await h.metric(srv, 'parley_lua_stopped_total');
  console.log(`binary: ${process.env.PARLEY_BIN || 'build/parley'}; ${SECONDS} s`);
  console.log(line('all', [...early, ...late]));
  console.log(line('first 5 s', early));
  console.log(line('after 5 s', late));
  console.log(`offender: ${connects} connection(s), answers by status ${JSON.stringify(answers)}, guard stops ${stopped}`);
  bystander.close();
  if (offender) offender.close();
  await srv.stop();
  h.cleanup();
}

main().catch((e) => { console.error(e); h.cleanup(); process.exit(1); });
