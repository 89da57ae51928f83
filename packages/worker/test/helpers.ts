import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { createLogger, findBackend, parseConfig, type KeepaliveConfig } from "@vmcp-keepalive/runtime";
import { createPairScheduler, createSessionStore, decidePair, type SessionStore } from "@vmcp-keepalive/scheduler/internal";
import { closeRedis, createKeys, createRedis, queueOptions, QUEUE_EVENTS, QUEUE_KEEPALIVE, readBackendState, type BackendState } from "@vmcp-keepalive/shared";
import { afterEach } from "vitest";
import { captureLines, expectNoLeakedConnections, flushPrefix, startMcpTestBackend, testPrefix, type McpTestBackend, type McpTestBackendOptions } from "@vmcp-keepalive/testkit";
import { createWorker, type KeepaliveWorker } from "../src/index.js";
import { createTickRunner, type TickRunner } from "../src/internal.js";

/**
 * The test's view of one prefix on the shared redis-server: config, state store, the keepalive
 * queue, and what the scheduler would do (register pairs and upsert their job schedulers). The
 * worker's tests register through the scheduler's own pieces (decidePair +
 * SessionStore.applyRegistered; a dev-only dependency: the worker's code never imports the scheduler).
 */
export interface Harness {
  readonly prefix: string;
  readonly config: KeepaliveConfig;
  readonly redis: Redis;
  readonly store: SessionStore;
  /** The backend hash, decoded. */
  readBackend(backendId: string): Promise<BackendState>;
  readonly queue: Queue;
  readonly events: Queue;
  /** Registers one session with these backend sessions; returns the pairs that are active. */
  register(sessionId: string, backends: { backendId: string; backendSessionId?: string; protocolVersion?: string }[], maxLifetimeMs?: number): Promise<string[]>;
  /** Upserts the pair's job scheduler as the scheduler does (every backend interval, at the pair's phase offset, no job data). */
  schedule(sessionId: string, backendId: string): Promise<void>;
  startWorker(name?: string): Promise<{ worker: KeepaliveWorker; lines: Record<string, unknown>[] }>;
  /** A worker's tick runner without queue consumers: the test drives its ticks one at a time with `run()`. */
  idleWorker(name?: string): { worker: TickRunner; lines: Record<string, unknown>[] };
  close(): Promise<void>;
}

let sequence = 0;

export function createHarness(redisUrl: string, document: Record<string, unknown>): Harness {
  const prefix = testPrefix("pol");
  const config = parseConfig({ ...document, redis: { url: redisUrl, prefix } });
  const redis = createRedis(redisUrl, "client", `vmk-test-harness@${prefix}`);
  const keys = createKeys(prefix);
  const store = createSessionStore(redis, keys);
  const queue = new Queue(QUEUE_KEEPALIVE, queueOptions(redis, prefix));
  const events = new Queue(QUEUE_EVENTS, queueOptions(redis, prefix));
  const pairs = createPairScheduler([queue]);
  const stops: (() => Promise<void>)[] = [];

  const logged = (name: string) => {
    const { destination, lines } = captureLines();
    return { logger: createLogger({ name, level: "debug", destination }), lines };
  };

  return {
    prefix,
    config,
    redis,
    store,
    readBackend: (backendId) => readBackendState(redis, keys, backendId),
    queue,
    events,
    async register(sessionId, backends, maxLifetimeMs) {
      const message = {
        type: "session.registered" as const,
        v: 1 as const,
        sessionId,
        occurredAt: new Date().toISOString(),
        sequence: ++sequence,
        replicaId: "test",
        sessionTtlMs: 3_600_000,
        ...(maxLifetimeMs === undefined ? {} : { maxLifetimeMs }),
        backends,
      };
      const decisions = backends.map((b) => decidePair(findBackend(config, b.backendId)!, b, message));
      await store.applyRegistered(message, decisions, Date.now());
      return decisions.filter((d) => d.status === "active").map((d) => d.backendId);
    },
    async schedule(sessionId, backendId) {
      await pairs.upsert(sessionId, backendId, findBackend(config, backendId)!.intervalMs);
    },
    async startWorker(name = "worker") {
      const { logger, lines } = logged(name);
      const worker = createWorker({ config, logger });
      stops.push(() => worker.stop());
      await worker.start();
      return { worker, lines };
    },
    idleWorker(name = "worker") {
      const { logger, lines } = logged(name);
      const worker = createTickRunner({ config, logger });
      stops.push(() => worker.close());
      return { worker, lines };
    },
    async close() {
      for (const stop of stops) await stop().catch(() => {});
      await queue.close();
      await events.close();
      await flushPrefix(redisUrl, prefix);
      await closeRedis(redis);
    },
  };
}

/** Log lines with this message (substring match). */
export function logsMatching(lines: readonly Record<string, unknown>[], text: string | RegExp): Record<string, unknown>[] {
  return lines.filter((l) => {
    const msg = String(l["msg"] ?? "");
    return typeof text === "string" ? msg.includes(text) : text.test(msg);
  });
}

/**
 * The per-test cleanup of harness tests: `take()` hands over (and forgets) the test's harness,
 * which is closed first, then whatever the test started (last first), then no connection may be
 * left open.
 */
export function closeAfterEach(redisUrl: string, take: () => Harness | undefined, cleanups: (() => Promise<unknown>)[]): void {
  afterEach(async () => {
    await take()?.close();
    while (cleanups.length) await cleanups.pop()!();
    await expectNoLeakedConnections(redisUrl);
  });
}

/** Starts an MCP test backend that `cleanups` stops after the test. */
export async function startBackend(cleanups: (() => Promise<unknown>)[], options: McpTestBackendOptions = {}): Promise<McpTestBackend> {
  const backend = await startMcpTestBackend(options);
  cleanups.push(() => backend.stop());
  return backend;
}
