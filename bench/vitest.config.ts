import { vitestPreset } from "@vmcp-keepalive/testkit/vitest-preset";

// The smoke test runs the whole benchmark (tiny numbers) as a child process with its own
// embedded redis-server; no global setup is needed.
export default vitestPreset({ redis: false, testTimeout: 120_000 });
