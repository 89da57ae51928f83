import { defineConfig } from "vitest/config";

// The smoke test runs the whole benchmark (tiny numbers) as a child process with its own
// embedded redis-server; no global setup is needed.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 30_000,
  },
});
