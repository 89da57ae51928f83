import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterEach, expect } from "vitest";
import { createSessionStore, type SessionStore } from "@vmcp-keepalive/scheduler/internal";
import { closeRedis, createKeys, createRedis, createVmcpClient, QUEUE_KEEPALIVE, type VmcpClient } from "@vmcp-keepalive/shared";
import { expectNoLeakedConnections, flushPrefix, openBackendSession, startMcpTestBackend, testPrefix, type McpTestBackend, type OpenedSession } from "@vmcp-keepalive/testkit";
import { startSchedulerAndWorker, writeConfig, type RunningProcess } from "./processes.js";

/** One vMCP session `s1` with one backend `b1`, kept alive by a real scheduler and worker. */
export interface OnePair {
  readonly prefix: string;
  readonly backend: McpTestBackend;
  readonly scheduler: RunningProcess;
  readonly worker: RunningProcess;
  readonly redis: Redis;
  readonly queue: Queue;
  readonly store: SessionStore;
  readonly client: VmcpClient;
  /** The backend session registered for the pair. */
  readonly session: OpenedSession;
}

/**
 * Registers the cleanup (programs must exit 0, nothing left connected, the prefix flushed) and
 * returns `start`, which brings up one pair under the given `lock` and `keepalive` settings.
 */
export function onePairFixture(redisUrl: string): (label: string, settings: Record<string, unknown>, client?: { lockTimeoutMs?: number }) => Promise<OnePair> {
  const cleanups: (() => Promise<unknown>)[] = [];
  let prefix = "";
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });
  return async (label, settings, clientOptions = {}) => {
    prefix = testPrefix(label);
    const backend = await startMcpTestBackend();
    cleanups.push(() => backend.stop());
    const config = writeConfig({ redis: { url: redisUrl, prefix }, log: { level: "info" }, backends: [{ id: "b1", url: backend.url }], ...settings });
    const { scheduler, worker } = await startSchedulerAndWorker(config);
    cleanups.push(async () => {
      for (const p of [scheduler, worker]) expect(await p.stop()).toBe(0);
    });
    const redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    const queue = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
    cleanups.push(
      () => closeRedis(redis),
      () => queue.close(),
    );
    const client = createVmcpClient({ redisUrl, prefix, replicaId: "r1", ...clientOptions });
    cleanups.push(() => client.close());
    const session = await openBackendSession(backend.url);
    await client.registerSession("s1", { sessionTtlMs: 600_000, backends: [{ backendId: "b1", backendSessionId: session.sessionId, protocolVersion: session.protocolVersion }] });
    return { prefix, backend, scheduler, worker, redis, queue, store: createSessionStore(redis, createKeys(prefix)), client, session };
  };
}
