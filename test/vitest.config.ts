import { defineConfig } from "vitest/config";

// End-to-end suites start real processes (scheduler, worker) and real servers; they run one
// file at a time so that timing-sensitive assertions are not starved on a 2-core machine.
export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    globalSetup: ["./global-setup.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
