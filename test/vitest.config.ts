import { vitestPreset } from "@vmcp-keepalive/testkit/vitest-preset";

// End-to-end suites start real processes (scheduler, worker) and real servers; they run one
// file at a time so that timing-sensitive assertions are not starved on a 2-core machine.
export default vitestPreset({ include: ["**/*.test.ts"], fileParallelism: false, testTimeout: 120_000, hookTimeout: 60_000 });
