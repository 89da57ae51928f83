import { Writable } from "node:stream";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import {
  closeRedis,
  createBackendBreaker,
  createKeys,
  createLogger,
  createRedis,
  createStateStore,
  decidePair,
  findBackend,
  KEEPALIVE_JOB_NAME,
  KEEPALIVE_JOB_OPTIONS,
  parseConfig,
  queueOptions,
  QUEUE_EVENTS,
  QUEUE_KEEPALIVE,
  schedulerId,
  type BackendBreaker,
  type KeepaliveConfig,
  type Logger,
  type StateStore,
} from "@vmcp-keepalive/shared";
import { flushPrefix, testPrefix } from "@vmcp-keepalive/shared/testing";
import { createWorker, type KeepaliveWorker } from "../src/index.js";

/** A pino logger whose JSON lines land in `lines` (parsed), for asserting on logs. */
export function captureLogger(name = "worker"): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) {
        if (line.startsWith("{")) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger({ name, level: "debug", destination }), lines };
}

/**
 * The test's view of one prefix on the shared redis-server: config, state store, the keepalive
 * queue, and what the scheduler would do (register pairs and upsert their job schedulers). The
 * worker package does not depend on the scheduler package, so registration is done here with
 * the same shared pieces the scheduler uses (decidePair + StateStore.applyRegistered).
 */
export interface Harness {
  readonly prefix: string;
  readonly config: KeepaliveConfig;
  readonly redis: Redis;
  readonly store: StateStore;
  readonly breaker: BackendBreaker;
  readonly queue: Queue;
  readonly events: Queue;
  /** Registers one session with these backend sessions; returns the pairs that are active. */
  register(sessionId: string, backends: { backendId: string; backendSessionId?: string; protocolVersion?: string }[], maxLifetimeMs?: number): Promise<string[]>;
  /** Upserts the pair's job scheduler (every backend interval; first tick at once). */
  schedule(sessionId: string, backendId: string): Promise<void>;
  startWorker(name?: string): Promise<{ worker: KeepaliveWorker; lines: Record<string, unknown>[] }>;
  /** A worker that is not consuming the queue: drive it with `tick()`. */
  idleWorker(name?: string): { worker: KeepaliveWorker; lines: Record<string, unknown>[] };
  close(): Promise<void>;
}

let sequence = 0;

export function createHarness(redisUrl: string, document: Record<string, unknown>): Harness {
  const prefix = testPrefix("pol");
  const config = parseConfig({ ...document, redis: { url: redisUrl, prefix } });
  const redis = createRedis(redisUrl, "client", `vmk-test-harness@${prefix}`);
  const keys = createKeys(prefix);
  const store = createStateStore(redis, keys);
  const breaker = createBackendBreaker(redis, keys);
  const queue = new Queue(QUEUE_KEEPALIVE, queueOptions(redis, prefix));
  const events = new Queue(QUEUE_EVENTS, queueOptions(redis, prefix));
  const workers: KeepaliveWorker[] = [];

  const make = (name: string) => {
    const { logger, lines } = captureLogger(name);
    const worker = createWorker({ config, logger });
    workers.push(worker);
    return { worker, lines };
  };

  return {
    prefix,
    config,
    redis,
    store,
    breaker,
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
      const every = findBackend(config, backendId)!.intervalMs;
      await queue.upsertJobScheduler(schedulerId(sessionId, backendId), { every }, {
        name: KEEPALIVE_JOB_NAME,
        data: { sessionId, backendId },
        opts: KEEPALIVE_JOB_OPTIONS,
      });
    },
    async startWorker(name = "worker") {
      const w = make(name);
      await w.worker.start();
      return w;
    },
    idleWorker: (name = "worker") => make(name),
    async close() {
      for (const w of workers) await w.stop().catch(() => {});
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
