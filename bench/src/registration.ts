import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { applyMessage, createPairScheduler } from "@vmcp-keepalive/scheduler/internal";
import {
  closeRedis,
  createCredentialKeyRing,
  createKeys,
  createRedis,
  queueOptions,
  QUEUE_KEEPALIVE,
  QUEUE_SESSIONS,
  SESSION_MESSAGE_JOB_OPTIONS,
  STREAM_MESSAGE_FIELD,
  type CredentialKeyRing,
  type SessionRegistered,
} from "@vmcp-keepalive/shared";
import { createLogger } from "@vmcp-keepalive/runtime";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { parsedConfig, type BenchAuth } from "./config.js";
import { BACKEND_ID, benchRedisTarget, sleep, type BenchContext } from "./context.js";

/**
 * The `session.registered` message of bench pair `i`: one backend per session (the worst case
 * per pair) and a UUID-sized session id (what vMCPs use; id length is part of the memory cost).
 */
export function registeredMessage(ctx: BenchContext, i: number, tag: string, ring?: CredentialKeyRing): SessionRegistered {
  const s = ctx.sessions[i % ctx.sessions.length]!;
  const sessionId = `${tag}-${String(i).padStart(7, "0")}-4000-8000-00000000000`.slice(0, 36);
  // A token the size of a real one (an OAuth access token: ~1 KB), sealed for this pair.
  const credentials = ring ? { credentials: ring.seal(sessionId, BACKEND_ID, { headers: { Authorization: benchToken(i) }, expiresAt: Date.now() + 86_400_000 }) } : {};
  return {
    type: "session.registered",
    v: 1,
    sessionId,
    replicaId: "bench-vmcp",
    occurredAt: new Date().toISOString(),
    sequence: 1,
    sessionTtlMs: 86_400_000,
    backends: [{ backendId: BACKEND_ID, backendSessionId: s.sessionId, protocolVersion: s.protocolVersion, ...credentials }],
  };
}

/** Pair `i`'s bearer token: 1 KB, the size of a typical OAuth access token. */
export function benchToken(i: number): string {
  return `Bearer ${String(i).padStart(8, "0")}${"x".repeat(1_008)}`;
}

/** Number of job schedulers in the keepalive queue (one per kept-alive pair). */
export function schedulerCount(redis: Redis, prefix: string): Promise<number> {
  return redis.zcard(`${prefix}:${QUEUE_KEEPALIVE}:repeat`);
}

/**
 * Publishes `n` registrations to `vmcp-sessions` (as a fleet of vMCP replicas would, in bulk)
 * and waits until a running scheduler has created all `n` job schedulers. Returns pairs/s from
 * the first message enqueued to the last scheduler created.
 */
export async function registerThroughQueue(ctx: BenchContext, prefix: string, n: number, tag: string, timeoutMs: number): Promise<{ pairsPerSecond: number; ms: number }> {
  const conn = createRedis(benchRedisTarget(ctx), "client", "bench-publisher");
  const queue = new Queue(QUEUE_SESSIONS, queueOptions(conn, prefix));
  queue.on("error", () => {});
  try {
    const messages = Array.from({ length: n }, (_, i) => registeredMessage(ctx, i, tag));
    const before = await schedulerCount(ctx.redis, prefix);
    const started = Date.now();
    for (let i = 0; i < n; i += 1_000) {
      await queue.addBulk(messages.slice(i, i + 1_000).map((m) => ({ name: m.type, data: m, opts: SESSION_MESSAGE_JOB_OPTIONS })));
    }
    return await waitForSchedulers(ctx, prefix, n, before, started, timeoutMs);
  } finally {
    await queue.close();
    await closeRedis(conn);
  }
}

/** Waits until `n` job schedulers were added since `before`; pairs/s since `started`. */
async function waitForSchedulers(ctx: BenchContext, prefix: string, n: number, before: number, started: number, timeoutMs: number): Promise<{ pairsPerSecond: number; ms: number }> {
  const deadline = started + timeoutMs;
  for (;;) {
    if ((await schedulerCount(ctx.redis, prefix)) - before >= n) break;
    if (Date.now() > deadline) throw new Error(`registration of ${n} pairs did not finish within ${timeoutMs} ms`);
    await sleep(20);
  }
  const ms = Date.now() - started;
  return { pairsPerSecond: (n * 1000) / ms, ms };
}

/**
 * The same as {@link registerThroughQueue} through the ingress stream: `n` registrations added
 * with XADD (pipelined 1,000 at a time, as a fleet of vMCPs would add them), until a running
 * scheduler has created all `n` job schedulers.
 */
export async function registerThroughStream(ctx: BenchContext, prefix: string, n: number, tag: string, timeoutMs: number): Promise<{ pairsPerSecond: number; ms: number }> {
  const conn = createRedis(benchRedisTarget(ctx), "client", "bench-stream-publisher");
  const stream = createKeys(prefix).sessionMessagesStream;
  try {
    const messages = Array.from({ length: n }, (_, i) => JSON.stringify(registeredMessage(ctx, i, tag)));
    const before = await schedulerCount(ctx.redis, prefix);
    const started = Date.now();
    for (let i = 0; i < n; i += 1_000) {
      const pipeline = conn.pipeline();
      for (const m of messages.slice(i, i + 1_000)) pipeline.xadd(stream, "*", STREAM_MESSAGE_FIELD, m);
      await pipeline.exec();
    }
    return await waitForSchedulers(ctx, prefix, n, before, started, timeoutMs);
  } finally {
    await closeRedis(conn);
  }
}

/**
 * Registers `n` pairs in this process through the scheduler's own code path (`applyMessage`:
 * the state script, then `upsertJobScheduler`), without the queue hop — for sizes where going
 * through `vmcp-sessions` would take longer than the benchmark may.
 */
export async function registerInProcess(ctx: BenchContext, prefix: string, n: number, intervalMs: number, tag: string, auth?: BenchAuth): Promise<{ pairsPerSecond: number; ms: number }> {
  const conn = createRedis(benchRedisTarget(ctx), "client", "bench-in-process");
  const queue = new Queue(QUEUE_KEEPALIVE, queueOptions(conn, prefix));
  queue.on("error", () => {});
  const config = parsedConfig(ctx, prefix, intervalMs, auth);
  const ring = auth?.mode === "session" ? createCredentialKeyRing([auth.key]) : undefined;
  const deps = {
    config,
    store: createSessionStore(conn, createKeys(prefix)),
    scheduler: createPairScheduler([queue]),
    log: createLogger({ name: "bench", level: "silent" }),
    now: Date.now,
  };
  try {
    const started = Date.now();
    let next = 0;
    const lanes = Array.from({ length: 128 }, async () => {
      while (next < n) await applyMessage(deps, registeredMessage(ctx, next++, tag, ring));
    });
    await Promise.all(lanes);
    const ms = Date.now() - started;
    return { pairsPerSecond: (n * 1000) / ms, ms };
  } finally {
    await queue.close();
    await closeRedis(conn);
  }
}
