// metrics.test.js - /metrics has what an operator needs (issue 20, item 2):
// the time of event handling by event name, of acks and of the store's
// commits as histograms, the store's map size and use, online users and rooms, script
// loads by result, the process's CPU, memory and descriptors, and the
// build. And the text keeps the Prometheus exposition format's rules:
// `promtool check metrics` passes it (promtool from Debian's `prometheus`
// package, unpacked by `tests/deps.sh --test` into tests/.tmp/promtool), and
// the rules are also checked here line by line, to say which line breaks
// which.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./harness');

const PROMTOOL = path.join(h.ROOT, 'tests', '.tmp', 'promtool', 'promtool');

// promtool's own verdict (its lint included) on a scrape.
function promtool(text) {
  assert.ok(fs.existsSync(PROMTOOL), `no ${PROMTOOL}: run bash tests/deps.sh --test`);
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
}

const KEY = 'metrics-test-key-0123456789';
let srv;

test.before(async () => { srv = await h.startParley({ env: { PARLEY_API_KEY: KEY } }); });
test.after(async () => {
  assert.equal((await srv.stop()).code, 0);
  h.cleanup();
});

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

// Parses `name{a="x",b="y"} value` (label values with \\, \" and \n
// escapes); throws on what the format does not allow.
function sample(line) {
  const m = /^([^{ ]+)(\{(.*)\})? (\S+)$/.exec(line);
  if (!m) throw new Error(`not a sample line: ${line}`);
  const [, name, , body = '', value] = m;
  if (!NAME.test(name)) throw new Error(`bad metric name: ${line}`);
  const labels = {};
  let rest = body;
  while (rest.length) {
    const lm = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
    if (!lm) throw new Error(`bad labels: ${line}`);
    if (!LABEL.test(lm[1])) throw new Error(`bad label name ${lm[1]}: ${line}`);
    if (lm[1] in labels) throw new Error(`label ${lm[1]} twice: ${line}`);
    labels[lm[1]] = lm[2];
    rest = rest.slice(lm[0].length);
  }
  if (!/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?Inf$|^NaN$/.test(value)) {
    throw new Error(`bad value: ${line}`);
  }
  return { name, labels, value: Number(value.replace('Inf', 'Infinity')) };
}

// The family a sample belongs to, given the declared types.
function familyOf(name, types) {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      if (types.get(base) === 'histogram') return base;
    }
  }
  return name;
}

// Checks the whole text; returns { families: Map(name -> {type, samples}) }.
function check(text) {
  assert.ok(text.endsWith('\n'), 'the text ends with a newline');
  const types = new Map();
  const helps = new Set();
  const families = new Map();
  const closed = new Set();
  let current = null;
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      assert.ok(m, `a comment that is neither HELP nor TYPE: ${line}`);
      const [, kind, name, rest] = m;
      assert.match(name, NAME);
      if (kind === 'HELP') {
        assert.ok(!helps.has(name), `HELP twice for ${name}`);
        helps.add(name);
      } else {
        assert.ok(!types.has(name), `TYPE twice for ${name}`);
        assert.ok(TYPES.has(rest), `unknown type ${rest} for ${name}`);
        assert.ok(!families.has(name), `TYPE for ${name} after its samples`);
        types.set(name, rest);
      }
      continue;
    }
    assert.notEqual(line, '', 'no empty lines');
    const s = sample(line);
    const fam = familyOf(s.name, types);
    if (fam !== current) {
      assert.ok(!closed.has(fam), `the samples of ${fam} are not together`);
      if (current) closed.add(current);
      current = fam;
    }
    if (!families.has(fam)) families.set(fam, { type: types.get(fam) || 'untyped', samples: [] });
    families.get(fam).samples.push(s);
  }
  for (const [name, f] of families) {
    if (f.type === 'counter') assert.match(name, /_total$/, `counter ${name} ends in _total (promtool's lint)`);
    if (f.type === 'counter') for (const s of f.samples) assert.ok(s.value >= 0, `${name} negative`);
    const keys = new Set();
    for (const s of f.samples) {
      const k = s.name + JSON.stringify(Object.entries(s.labels).sort());
      assert.ok(!keys.has(k), `the series ${k} twice`);
      keys.add(k);
    }
    if (f.type === 'histogram') checkHistogram(name, f.samples);
  }
  return families;
}

// Buckets cumulative and ending with +Inf, which equals _count; a _sum.
function checkHistogram(name, samples) {
  const series = new Map();
  for (const s of samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    if (!series.has(k)) series.set(k, { buckets: [], sum: null, count: null });
    const e = series.get(k);
    if (s.name === `${name}_bucket`) {
      assert.ok(le !== undefined, `${name}_bucket without le`);
      e.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${name}_sum`) e.sum = s.value;
    else if (s.name === `${name}_count`) e.count = s.value;
    else assert.fail(`${s.name} in histogram ${name}`);
  }
  for (const [k, e] of series) {
    assert.ok(e.buckets.length > 0 && e.sum !== null && e.count !== null, `${name}${k}: buckets, _sum and _count`);
    for (let i = 1; i < e.buckets.length; i++) {
      assert.ok(e.buckets[i][0] > e.buckets[i - 1][0], `${name}${k}: le ascending`);
      assert.ok(e.buckets[i][1] >= e.buckets[i - 1][1], `${name}${k}: buckets cumulative`);
    }
    const last = e.buckets[e.buckets.length - 1];
    assert.equal(last[0], Infinity, `${name}${k}: a +Inf bucket`);
    assert.equal(last[1], e.count, `${name}${k}: +Inf equals _count`);
  }
}

function value(families, name, labels = {}) {
  const f = families.get(name);
  assert.ok(f, `no family ${name}`);
  const s = f.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.ok(s, `no ${name}${JSON.stringify(labels)}`);
  return s.value;
}

function histogramCount(families, name, labels = {}) {
  const f = families.get(name);
  assert.ok(f, `no histogram ${name}`);
  const s = f.samples.find((x) => x.name === `${name}_count` && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.ok(s, `no ${name}_count${JSON.stringify(labels)}`);
  return s.value;
}

test('after events, a message stored and a bad event name: /metrics keeps the exposition format and has what an operator needs', async () => {
  const ann = h.sioClient(srv, '/messages', { query: { userId: 'ann' }, transports: ['websocket'] });
  const bob = h.sioClient(srv, '/messages', { query: { userId: 'bob' }, transports: ['websocket'] });
  const bob2 = h.sioClient(srv, '/messages', { query: { userId: 'bob' }, transports: ['polling'] });
  await Promise.all([h.connected(ann), h.connected(bob), h.connected(bob2)]);
  for (let i = 0; i < 3; i++) assert.equal(await ann.timeout(5000).emitWithAck('test:echo', i), i);
  // A name with what the format must escape.
  await ann.timeout(5000).emitWithAck('bad"name\\x\ny', 1).catch(() => {});
  const r = await fetch(`${srv.url}/api/conversations/c1/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ senderId: 'ann', type: 'text', content: 'hello', clientMessageId: 'm1' }),
  });
  assert.equal(r.status, 201, await r.text());
  const res = await fetch(`${srv.url}/metrics`);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const text = await res.text();
  const fams = check(text);
  promtool(text);

  assert.equal(fams.get('parley_event_seconds').type, 'histogram');
  assert.equal(histogramCount(fams, 'parley_event_seconds', { event: 'test:echo' }), 3);
  assert.equal(histogramCount(fams, 'parley_event_seconds', { event: '_unknown' }), 1);
  assert.equal(fams.get('parley_ack_seconds').type, 'histogram');
  assert.equal(histogramCount(fams, 'parley_ack_seconds'), 3);
  if (h.PG) {
    // The store on PostgreSQL: its connection's series, no LMDB ones.
    assert.equal(value(fams, 'parley_pg_up'), 1);
    assert.ok(value(fams, 'parley_pg_transactions_total') >= 1);
    assert.ok(value(fams, 'parley_pg_statements_total') >= 1);
    assert.equal(fams.get('parley_store_map_bytes'), undefined);
  } else {
    assert.equal(fams.get('parley_store_commit_seconds').type, 'histogram');
    assert.ok(histogramCount(fams, 'parley_store_commit_seconds') >= 1);
    assert.ok(value(fams, 'parley_store_map_bytes') > 0);
    const used = value(fams, 'parley_store_used_bytes');
    assert.ok(used > 0 && used <= value(fams, 'parley_store_map_bytes'), String(used));
  }
  assert.equal(value(fams, 'parley_online_users'), 2);
  assert.ok(value(fams, 'parley_rooms') >= 2);
  assert.equal(value(fams, 'parley_script_loads_total', { result: 'ok' }), 1);
  assert.equal(value(fams, 'parley_script_loads_total', { result: 'refused' }), 0);
  assert.ok(value(fams, 'process_cpu_seconds_total') > 0);
  assert.ok(value(fams, 'process_resident_memory_bytes') > 1 << 20);
  assert.ok(value(fams, 'process_open_fds') >= 5);
  assert.ok(value(fams, 'process_max_fds') >= value(fams, 'process_open_fds'));
  const build = fams.get('parley_build_info').samples[0];
  assert.match(build.labels.version, /^\d+\.\d+\.\d+/);
  assert.equal(build.value, 1);
  // A reload counts by result.
  assert.equal(await h.reload(srv), 'ok');
  assert.equal(await h.metric(srv, 'parley_script_loads_total{result="ok"}'), 2);
  ann.close();
  bob.close();
  bob2.close();
  // Users leave: the gauge follows.
  await h.waitFor(() => h.metric(srv, 'parley_online_users'), (n) => n === 0, 'online users back to 0');
});
