import { Queue } from "bullmq";
import { closeRedis, createRedis, queueOptions, QUEUE_SESSIONS, REDIS_SERVER_SETTINGS } from "@vmcp-keepalive/shared";
import { configDocument } from "../config.js";
import { BACKEND_ID, sleep, type BenchContext } from "../context.js";
import { usedMemory } from "../measure/redis-info.js";
import { memoryBreakdown, type MemoryPart } from "../measure/memory-breakdown.js";
import { PROGRAMS, schedulerNodeFlags, startChild, waitForOutput, writeConfig } from "../processes.js";
import { registeredMessage, registerInProcess, registerThroughQueue } from "../registration.js";

export interface MemoryResult {
  /** Registration through the real scheduler process: pairs/s from enqueue to job scheduler. */
  readonly registrationPairsPerSecond: number;
  readonly registrationMs: number;
  readonly bytesPerPairSmall: number;
  readonly bytesPerPairLarge: number;
  /** In-process registration rate (same code path, no queue hop), for comparison. */
  readonly inProcessPairsPerSecond: number;
  /** Small size again, in-process, on the Redis settings vmcp-keepalive ships (REDIS_SERVER_SETTINGS). */
  readonly bytesPerPairShipped: number;
  /**
   * Of `bytesPerPairLarge`, ours (pair and session hashes): the `used_memory`
   * drop when they are deleted, the same method as the total and as plain BullMQ's bytes per pair.
   */
  readonly ourBytesPerPairLarge: number;
  /** Where a pair's bytes go at the large size (MEMORY USAGE of a sample of pairs' keys). */
  readonly breakdown: readonly MemoryPart[];
}

/** Interval of the memory runs (ours and the floor's): long, so no job fires while memory is read. */
export const MEMORY_INTERVAL_MS = 300_000;

/**
 * Redis bytes per registered pair (job scheduler, its pending job, their index entries, pair and
 * session hashes), measured as the `used_memory` delta on the bench's own redis-server:
 * - small size: registered through `vmcp-sessions` and a real scheduler process (which also
 *   gives the registration rate); the scheduler's bounded history of finished messages is
 *   cleaned before reading, since it does not grow with pairs;
 * - large size: registered in-process through the scheduler's own code path.
 */
export async function runMemory(ctx: BenchContext): Promise<MemoryResult> {
  const { sizes } = ctx;
  await ctx.redis.flushall();
  const prefix = "bench-mem";
  const configPath = writeConfig(ctx.dir, "memory", configDocument(ctx, prefix, MEMORY_INTERVAL_MS));
  const scheduler = startChild("scheduler", PROGRAMS.scheduler, ["--config", configPath], schedulerNodeFlags);
  let small: { pairsPerSecond: number; ms: number };
  let bytesPerPairSmall: number;
  try {
    await waitForOutput(scheduler, '"msg":"scheduler started"');
    const base = await usedMemory(ctx.redis);
    ctx.log(`  registering ${sizes.memoryPairsSmall} pairs through vmcp-sessions and the scheduler process`);
    small = await registerThroughQueue(ctx, prefix, sizes.memoryPairsSmall, "mem", 120_000);
    const conn = createRedis(ctx.redisUrl, "client", "bench-clean");
    const sessions = new Queue(QUEUE_SESSIONS, queueOptions(conn, prefix));
    try {
      // The last message's job may still be finishing; then drop the bounded finished history.
      await sleep(200);
      await sessions.clean(0, 1_000_000, "completed");
    } finally {
      await sessions.close();
      await closeRedis(conn);
    }
    bytesPerPairSmall = ((await usedMemory(ctx.redis)) - base) / sizes.memoryPairsSmall;
  } finally {
    await scheduler.stop();
  }
  await ctx.redis.flushall();

  const base = await usedMemory(ctx.redis);
  ctx.log(`  registering ${sizes.memoryPairsLarge} pairs in-process (scheduler code path)`);
  const large = await registerInProcess(ctx, prefix, sizes.memoryPairsLarge, MEMORY_INTERVAL_MS, "mem");
  const bytesPerPairLarge = ((await usedMemory(ctx.redis)) - base) / sizes.memoryPairsLarge;
  const sample = Array.from(
    { length: Math.min(500, sizes.memoryPairsLarge) },
    (_, k) => registeredMessage(ctx, Math.floor((k * sizes.memoryPairsLarge) / Math.min(500, sizes.memoryPairsLarge)), "mem").sessionId,
  );
  const breakdown = await memoryBreakdown(ctx.redis, prefix, sample, BACKEND_ID);
  const withOurs = await usedMemory(ctx.redis);
  await deleteOurKeys(ctx, prefix);
  const ourBytesPerPairLarge = (withOurs - (await usedMemory(ctx.redis))) / sizes.memoryPairsLarge;
  await ctx.redis.flushall();

  // The same layout on the Redis settings vmcp-keepalive ships (REDIS_SERVER_SETTINGS: hashes
  // whose values reach 1 KB kept as listpacks; Redis' default limit is 64 bytes, which a BullMQ
  // job's opts JSON always exceeds).
  const restore = await applySettings(ctx, REDIS_SERVER_SETTINGS);
  let bytesPerPairShipped: number;
  try {
    const base2 = await usedMemory(ctx.redis);
    await registerInProcess(ctx, prefix, sizes.memoryPairsSmall, MEMORY_INTERVAL_MS, "mlp");
    bytesPerPairShipped = ((await usedMemory(ctx.redis)) - base2) / sizes.memoryPairsSmall;
  } finally {
    await restore();
    await ctx.redis.flushall();
  }
  return {
    bytesPerPairShipped,
    registrationPairsPerSecond: small.pairsPerSecond,
    registrationMs: small.ms,
    bytesPerPairSmall,
    bytesPerPairLarge,
    ourBytesPerPairLarge,
    inProcessPairsPerSecond: large.pairsPerSecond,
    breakdown,
  };
}

/** Deletes this project's own keys under `prefix` (unsharded): pair and session hashes. BullMQ's stay. */
async function deleteOurKeys(ctx: BenchContext, prefix: string): Promise<void> {
  for (const pattern of [`${prefix}:pair:*`, `${prefix}:session:*`]) {
    let cursor = "0";
    do {
      const [next, keys] = await ctx.redis.scan(cursor, "MATCH", pattern, "COUNT", 1_000);
      if (keys.length > 0) await ctx.redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  }
}

/** Sets `settings` with CONFIG SET; returns what puts the server's previous values back. */
export async function applySettings(ctx: BenchContext, settings: Readonly<Record<string, string>>): Promise<() => Promise<void>> {
  const previous: [string, string][] = [];
  for (const [name, value] of Object.entries(settings)) {
    previous.push([name, ((await ctx.redis.config("GET", name)) as string[])[1] ?? ""]);
    await ctx.redis.config("SET", name, value);
  }
  return async () => {
    for (const [name, value] of previous) await ctx.redis.config("SET", name, value);
  };
}
