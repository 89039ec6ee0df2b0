// The official Durable Streams server conformance suite, run against the server at
// $DS_CONFORMANCE_URL (run.sh starts the embedded server and sets it). The suite's own CLI finds
// no test file when installed from the registry (vitest skips node_modules), so this file is the
// test file vitest runs.
import { runConformanceTests } from '@durable-streams/server-conformance-tests';

const baseUrl = process.env.DS_CONFORMANCE_URL;
if (!baseUrl) {
  throw new Error('DS_CONFORMANCE_URL must name the server to test (run.sh sets it)');
}
const longPollTimeoutMs = Number(process.env.DS_CONFORMANCE_LONG_POLL_MS ?? '20000');
// The suite's subscription tests (PROTOCOL.md 6 and 7) run unless DS_CONFORMANCE_SUBSCRIPTIONS=0
// (for a server under test that has no subscriptions).
const subscriptions = process.env.DS_CONFORMANCE_SUBSCRIPTIONS !== '0';

runConformanceTests({ baseUrl, longPollTimeoutMs, subscriptions });
