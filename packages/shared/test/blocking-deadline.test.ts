import { describe, expect, it } from "vitest";
import { startEmbeddedRedis } from "@vmcp-keepalive/testkit";
import { closeRedis, createRedis, duplicateRedis } from "../src/index.js";
import { BLOCKING_GRACE_MS } from "../src/redis/connection.js";

/*
 * A consumer connection's blocking command settles client-side at its own timeout + a grace under
 * BullMQ's 1 s watchdog, even when the server never answers: after a Cluster failover BullMQ's
 * watchdog path could leave a shard's consumer stuck for good (connection.ts). A real
 * redis-server that stops answering: CLIENT PAUSE, on a server of its own (the pause would stall
 * the other test files on the shared one).
 */
describe("blocking commands on consumer connections", () => {
  it("BZPOPMIN resolves empty at its timeout + the grace while the server does not answer", async () => {
    expect(BLOCKING_GRACE_MS).toBeLessThan(1_000);
    const server = await startEmbeddedRedis();
    const url = server.url;
    const admin = createRedis(url, "client", "vmk-test-pause");
    const consumer = createRedis(url, "consumer", "vmk-test-consumer");
    const copy = duplicateRedis(admin, "consumer", "vmk-test-consumer-copy");
    try {
      await Promise.all([consumer.ping(), copy.ping()]);
      await admin.call("CLIENT", "PAUSE", "3000", "ALL");
      const started = Date.now();
      const [a, b] = await Promise.all([consumer.bzpopmin("vmk-test-never", 1), copy.bzpopmin("vmk-test-never", 1)]);
      const waited = Date.now() - started;
      expect(a).toBeNull();
      expect(b).toBeNull();
      // 1 s timeout + 0.5 s grace; the server itself would answer only after the 3 s pause.
      expect(waited).toBeGreaterThanOrEqual(1_000);
      expect(waited).toBeLessThan(2_500);
    } finally {
      await new Promise((r) => setTimeout(r, 3_000));
      await Promise.all([closeRedis(consumer), closeRedis(copy), closeRedis(admin)]);
      await server.stop();
    }
  }, 20_000);
});
