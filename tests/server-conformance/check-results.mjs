// Reads vitest's JSON results and known-failures.txt; prints the counts and exits non-zero when a
// test failed that the list does not excuse, or when a listed test no longer fails.
//
// usage: node check-results.mjs RESULTS.json KNOWN-FAILURES.txt
import { readFileSync } from 'node:fs';

const [resultsPath, knownPath] = process.argv.slice(2);
const results = JSON.parse(readFileSync(resultsPath, 'utf8'));

// known-failures.txt: `full test name | reason`, one a line; `#` starts a comment line.
const known = new Map();
for (const raw of readFileSync(knownPath, 'utf8').split('\n')) {
  const line = raw.trim();
  if (line === '' || line.startsWith('#')) continue;
  const bar = line.indexOf(' | ');
  if (bar < 0) {
    console.error(`known-failures.txt: no " | reason" in: ${line}`);
    process.exit(2);
  }
  known.set(line.slice(0, bar).trim(), line.slice(bar + 3).trim());
}

const counts = { passed: 0, failed: 0, skipped: 0 };
const unexpected = [];
const excused = [];
const seen = new Set();
for (const file of results.testResults ?? []) {
  if ((file.assertionResults ?? []).length === 0 && file.status === 'failed') {
    unexpected.push({ name: `(test file ${file.name})`, message: file.message ?? '' });
  }
  for (const t of file.assertionResults ?? []) {
    const name = [...(t.ancestorTitles ?? []), t.title].join(' > ');
    seen.add(name);
    if (t.status === 'passed') {
      counts.passed += 1;
      if (known.has(name)) unexpected.push({ name, message: 'listed in known-failures.txt but passed: remove it from the list' });
    } else if (t.status === 'failed') {
      counts.failed += 1;
      if (known.has(name)) excused.push({ name, reason: known.get(name) });
      else unexpected.push({ name, message: (t.failureMessages ?? []).join('\n').split('\n').slice(0, 6).join('\n') });
    } else {
      counts.skipped += 1;
    }
  }
}

const filtered = !!process.env.DS_CONFORMANCE_FILTER;
if (!filtered) {
  for (const name of known.keys()) {
    if (!seen.has(name)) unexpected.push({ name, message: 'listed in known-failures.txt but the suite has no such test' });
  }
}

if (excused.length > 0) {
  console.log(`\nknown suite defects (known-failures.txt), failing as expected:`);
  for (const e of excused) console.log(`  - ${e.name}\n      ${e.reason}`);
}
if (unexpected.length > 0) {
  console.log(`\nunexpected results:`);
  for (const u of unexpected) console.log(`  - ${u.name}\n      ${u.message.replace(/\n/g, '\n      ')}`);
}
const total = counts.passed + counts.failed + counts.skipped;
console.log(
  `\nvitest: ${total} tests: ${counts.passed} passed, ${counts.failed} failed ` +
    `(${excused.length} of them known suite defects), ${counts.skipped} skipped`,
);
// The closing line counts as failed only what known-failures.txt does not excuse, like the exit
// status.
console.log(
  `conformance: ${counts.passed} passed, ${counts.failed - excused.length} failed, ${counts.skipped} skipped`,
);
process.exit(unexpected.length > 0 ? 1 : 0);
