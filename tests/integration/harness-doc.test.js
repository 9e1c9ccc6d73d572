// harness-doc.test.js - docs/plugins.md's table of the plugin test harness
// (tests/harness/parley-testing.js) lists everything the harness offers: a
// plugin author reads the table, not the harness's source, so what is
// missing from it (srv.url, say) does not exist for them.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const parley = require('../harness/parley-testing');

const ROOT = path.resolve(__dirname, '..', '..');

test('every field and method of parley-testing, of a started server and of its clients is in docs/plugins.md\'s table', async () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'plugins.md'), 'utf8');
  const table = doc.split('\n').filter((l) => l.startsWith('| `')).join('\n');
  const srv = await parley.start();
  try {
    const c = await srv.client('doc');
    const names = [
      ...Object.keys(parley).map((k) => `parley.${k}`),
      ...Object.keys(srv).map((k) => `srv.${k}`),
      ...Object.getOwnPropertyNames(parley.Client.prototype)
        .filter((k) => k !== 'constructor').map((k) => `client.${k}`),
      ...Object.keys(c).filter((k) => !['queues', 'waiters'].includes(k)).map((k) => `client.${k}`),
    ];
    const missing = names.filter((n) => !table.includes(`\`${n}`));
    assert.deepEqual(missing, [], 'not in the harness table of docs/plugins.md');
  } finally {
    await srv.stop();
    parley.cleanup();
  }
});
