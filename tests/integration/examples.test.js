// examples.test.js - examples/README.md says what the files hold: every
// repository path it names exists, and what it quotes of the pins plugin
// (its length, the line of MAX_PINS in the reload step's error) is the
// file's. A tutorial that has drifted from its code teaches the reader
// code that is not there.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const readme = fs.readFileSync(path.join(ROOT, 'examples', 'README.md'), 'utf8');

test('every path examples/README.md names (examples/..., tests/..., docs/...) exists', () => {
  const paths = new Set();
  for (const m of readme.matchAll(/`((?:examples|tests|docs|plugins|scripts)\/[^`\s:]*)/g)) {
    paths.add(m[1].replace(/\/$/, ''));
  }
  assert.ok(paths.size >= 5, [...paths].join(' '));
  const missing = [...paths].filter((p) => !fs.existsSync(path.join(ROOT, p)));
  assert.deepEqual(missing, []);
});

test('what the tutorial quotes of the pins plugin is the file: its length, the line of MAX_PINS, the membership check', () => {
  const file = fs.readFileSync(path.join(ROOT, 'examples', 'plugins', 'pins', 'init.lua'), 'utf8');
  const lines = file.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const count = readme.match(/`examples\/plugins\/pins\/init\.lua`: (\d+) lines/);
  assert.ok(count, 'the tutorial gives the plugin\'s length');
  assert.equal(Number(count[1]), lines.length);
  const line = readme.match(/examples\/plugins\/pins\/init\.lua:(\d+): unexpected symbol/);
  assert.ok(line);
  assert.match(lines[Number(line[1]) - 1], /^local MAX_PINS = 3$/);
  // The tutorial teaches the check the plugin makes.
  assert.match(readme, /parley\.store\.is_member/);
  assert.match(file, /parley\.store\.is_member/);
});
