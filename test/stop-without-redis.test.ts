import { describe, expect, it } from "vitest";
import { startEmbeddedRedis, startMcpTestBackend, testPrefix } from "@vmcp-keepalive/testkit";
import { startProgram, waitForLog, writeConfig } from "./helpers/processes.js";

/**
 * SIGTERM while Redis is gone: the worker cannot close its Redis connections cleanly, but it
 * must still exit within its stop bound (two call timeouts + 10 s), never hang until SIGKILL.
 */
describe("stopping while Redis is unreachable", () => {
  it("the worker exits within its stop bound after SIGTERM", async () => {
    const redis = await startEmbeddedRedis();
    const backend = await startMcpTestBackend();
    try {
      const config = writeConfig({
        redis: { url: redis.url, prefix: testPrefix("stop") },
        keepalive: { interval: "2s", timeout: "1s" },
        backends: [{ id: "pw", url: backend.url }],
      });
      const worker = startProgram("worker", ["--config", config]);
      await waitForLog(worker, "worker started");
      await redis.stop();
      await new Promise((r) => setTimeout(r, 1_000));
      const started = Date.now();
      const code = await worker.stop(30_000);
      const took = Date.now() - started;
      console.log(`[stop] SIGTERM with Redis down: exit ${code} after ${took} ms`);
      // Bound: 2 × 1 s + 10 s = 12 s; either a clean stop (0) or the bounded exit (1), never SIGKILL.
      expect(took, worker.output().slice(-2_000)).toBeLessThan(14_000);
      expect([0, 1]).toContain(code);
      expect(worker.child.signalCode).toBeNull();
    } finally {
      await backend.stop();
      await redis.stop();
    }
  });
});
