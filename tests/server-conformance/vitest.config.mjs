import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['conformance.test.mjs'],
    // The suite's tests set their own timeouts where they wait (long-polls, SSE); give the rest
    // room on a busy machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    passWithNoTests: false,
  },
});
