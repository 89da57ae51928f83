import type { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { expectNoLeakedConnections, flushPrefix, freePort, openVmkConnections, sleep, startEmbeddedRedis, testPrefix } from "@vmcp-keepalive/testkit";
import { openClientPairLock } from "../src/client/client-pair-lock.js";
import { createVmcpClient } from "../src/client/vmcp-client.js";
import type { ClientLogger } from "../src/logger.js";
import { closeRedis, createRedis, type RedisConnection } from "../src/redis/connection.js";
import { createKeys } from "../src/redis/keys.js";

const redisUrl = inject("redisUrl");

/** A ClientLogger that keeps its warnings. */
function warnings(): { log: ClientLogger; lines: { obj: Record<string, unknown>; msg: string }[] } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const log: ClientLogger = {
    child: () => log,
    debug: () => {},
    info: () => {},
    warn: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }),
    error: () => {},
  };
  return { log, lines };
}

describe("the pair lock fails fast", () => {
  let prefix: string;
  beforeEach(() => {
    prefix = testPrefix("pairlock");
  });
  afterEach(async () => {
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("waits for a connection still making its first connection, so a client just created gets the lock", async () => {
    const lock = openClientPairLock({ main: { target: { mode: "standalone", url: redisUrl } }, lockRedisUrls: [], prefix, connectWaitMs: 5_000 });
    try {
      const taken = await lock.locker.tryLock(createKeys(prefix).pairLock("s1", "b1"), 1_000);
      expect(taken.acquired).toBe(true);
      if (taken.acquired) await taken.lock.release();
    } finally {
      await lock.close();
    }
  });

  it("answers lock_unavailable at once, naming the nodes, when fewer than a quorum of lock nodes are reachable", async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const lock = openClientPairLock({ main: { target: { mode: "standalone", url: redisUrl } }, lockRedisUrls: ports.map((p) => `redis://127.0.0.1:${p}`), prefix, connectWaitMs: 10_000 });
    try {
      const started = Date.now();
      const result = await lock.locker.tryLock(createKeys(prefix).pairLock("s1", "b1"), 1_000);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(result).toMatchObject({ acquired: false, reason: "lock_unavailable" });
      if (!result.acquired && result.reason === "lock_unavailable") {
        expect(result.error.message).toContain(`redis://127.0.0.1:${ports[0]}`);
        expect(result.error.message).toContain("0 of 3 lock nodes, 2 needed");
      }
    } finally {
      await lock.close();
    }
  });

  it("copies a caller's connection without an offline queue or retries, and leaves the caller's open on close", async () => {
    const callers: RedisConnection = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    const lock = openClientPairLock({ main: { connection: callers }, lockRedisUrls: [], prefix, connectWaitMs: 5_000 });
    expect((lock.connection as Redis).options).toMatchObject({ enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName: `vmk-vmcp-lock@${prefix}` });
    const taken = await lock.locker.tryLock(createKeys(prefix).pairLock("s1", "b1"), 1_000);
    expect(taken.acquired).toBe(true);
    if (taken.acquired) await taken.lock.release();
    await lock.close();
    expect(await callers.ping()).toBe("PONG");
    await closeRedis(callers);
  });

  it("with the main Redis stopped, reinitializeBackend settles within lockTimeoutMs, reports why, and leaves nothing running", async () => {
    const own = await startEmbeddedRedis();
    const { log, lines } = warnings();
    const lockTimeoutMs = 1_000;
    const client = createVmcpClient({ redisUrl: own.url, prefix, replicaId: "r1", lockTimeoutMs, logger: log });
    let restarted: Awaited<ReturnType<typeof startEmbeddedRedis>> | undefined;
    try {
      expect((await client.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "first" }))).lock).toBe("held");
      await own.stop();

      const started = Date.now();
      const result = await client.reinitializeBackend("s1", "b1", async () => ({ backendSessionId: "second" }));
      expect(Date.now() - started).toBeLessThan(lockTimeoutMs + 500);
      // Never thrown at the vMCP: the callback's value comes back, the result says what failed.
      expect(result).toEqual({ value: { backendSessionId: "second" }, lock: "unavailable", state: "write_failed", schedulerRestoreRequested: false });
      const lockWarning = lines.find((l) => l.msg.startsWith("pair lock not obtained"));
      expect(lockWarning?.obj).toMatchObject({ reason: "lock_unavailable" });
      expect(String((lockWarning?.obj.err as Error | undefined)?.message)).toMatch(new RegExp(`pair lock unavailable: redis://127\\.0\\.0\\.1:${own.port}/? not reachable`));

      const closing = Date.now();
      await client.close();
      expect(Date.now() - closing).toBeLessThan(3_000);
      // A connection left open would reconnect to a Redis back on the same port (backoff at most 2 s).
      restarted = await startEmbeddedRedis({ port: own.port });
      await sleep(2_500);
      expect(await openVmkConnections(restarted.url, (n) => n.endsWith(`@${prefix}`))).toEqual([]);
    } finally {
      await client.close();
      await own.stop();
      await restarted?.stop();
    }
  });
});
