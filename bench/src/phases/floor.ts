import { Queue } from "bullmq";
import { closeRedis, createRedis, KEEPALIVE_JOB_NAME, queueOptions, QUEUE_KEEPALIVE, REDIS_SERVER_SETTINGS, schedulerId } from "@vmcp-keepalive/shared";
import { BACKEND_ID, sleep, type BenchContext } from "../context.js";
import { startLagRecorder } from "../measure/lag-recorder.js";
import { redisCpuMs, usedMemory } from "../measure/redis-info.js";
import { profileCommands, scriptNames, type CommandTime } from "../measure/script-profile.js";
import { percentile } from "../measure/stats.js";
import { applySettings, MEMORY_INTERVAL_MS } from "./memory.js";
import { PROGRAMS, startChild, waitForOutput, type Child } from "../processes.js";
import { registeredMessage } from "../registration.js";

export interface FloorWindow {
  readonly jobs: number;
  readonly perSecond: number;
  readonly redisCpuUsPerJob: number;
  readonly lagP50Ms: number;
  readonly lagP99Ms: number;
}

export interface FloorResult {
  /** Job schedulers upserted per second, one process, 128 concurrent upserts (the large size). */
  readonly upsertsPerSecond: number;
  /** `used_memory` delta per job scheduler (scheduler hash, pending job, their index entries) at the large size. */
  readonly bytesPerPair: number;
  /** The same at the small size on the Redis settings vmcp-keepalive ships (beside the memory phase's figure for ours). */
  readonly bytesPerPairShipped: number;
  /** `sizes.flatPairs` schedulers every `sizes.flatIntervalMs`: the rate the steady window of our flatness phase runs at. */
  readonly steady: FloorWindow;
  /** SLOWLOG profile of a short window at the steady rate, per job. */
  readonly steadyProfile: CommandTime[];
  /** `sizes.saturationPairs` schedulers every second: more due jobs than the worker runs. */
  readonly saturated: FloorWindow;
}

/**
 * Plain BullMQ on the same Redis in the same run, as the floor our figures are divided by: the
 * same job scheduler ids (our pairs' session and backend ids), interval, spread offsets, job name,
 * retention, events cap and worker concurrency, a processor that does nothing, and BullMQ's
 * defaults for everything else. The steady window reads the queue's `active` events as ours does
 * (the lag recorder), so both windows carry the same reader.
 */
export async function runFloor(ctx: BenchContext): Promise<FloorResult> {
  const { sizes } = ctx;
  const prefix = "bench-floor";
  const conn = createRedis(ctx.redisUrl, "client", "bench-floor");
  const queue = new Queue(QUEUE_KEEPALIVE, queueOptions(conn, prefix));
  queue.on("error", () => {});
  const upsert = async (n: number, everyMs: number): Promise<number> => {
    const started = Date.now();
    let next = 0;
    const lanes = Array.from({ length: 128 }, async () => {
      while (next < n) {
        const i = next++;
        const id = schedulerId(registeredMessage(ctx, i, "floor").sessionId, BACKEND_ID);
        await queue.upsertJobScheduler(id, { every: everyMs, offset: Math.floor(((i + 0.5) * everyMs) / n) }, { name: KEEPALIVE_JOB_NAME });
      }
    });
    await Promise.all(lanes);
    return (n * 1000) / (Date.now() - started);
  };
  const window = async (warmupMs: number, windowMs: number): Promise<FloorWindow> => {
    const events = createRedis(ctx.redisUrl, "consumer", "bench-floor-lag");
    const lag = await startLagRecorder(events, prefix);
    try {
      await sleep(warmupMs);
      const from = Date.now();
      const cpu0 = await redisCpuMs(ctx.redis);
      await sleep(windowMs);
      const cpu1 = await redisCpuMs(ctx.redis);
      const to = Date.now();
      await sleep(200);
      const lags = lag.between(from, to);
      return {
        jobs: lags.length,
        perSecond: (lags.length * 1000) / (to - from),
        redisCpuUsPerJob: ((cpu1 - cpu0) * 1000) / Math.max(1, lags.length),
        lagP50Ms: percentile(lags, 50),
        lagP99Ms: percentile(lags, 99),
      };
    } finally {
      await lag.close();
      await closeRedis(events);
    }
  };
  const startWorker = async (): Promise<Child> => {
    const worker = startChild("plain-bullmq-worker", PROGRAMS.plainBullmq, ["--url", ctx.redisUrl, "--prefix", prefix, "--concurrency", String(sizes.concurrency)]);
    await waitForOutput(worker, "plain worker started");
    return worker;
  };
  try {
    await ctx.redis.flushall();
    await queue.waitUntilReady();
    const base = await usedMemory(ctx.redis);
    ctx.log(`  upserting ${sizes.memoryPairsLarge} job schedulers (interval ${MEMORY_INTERVAL_MS} ms)`);
    const upsertsPerSecond = await upsert(sizes.memoryPairsLarge, MEMORY_INTERVAL_MS);
    const bytesPerPair = ((await usedMemory(ctx.redis)) - base) / sizes.memoryPairsLarge;
    await ctx.redis.flushall();
    const restore = await applySettings(ctx, REDIS_SERVER_SETTINGS);
    let bytesPerPairShipped: number;
    try {
      const base2 = await usedMemory(ctx.redis);
      await upsert(sizes.memoryPairsSmall, MEMORY_INTERVAL_MS);
      bytesPerPairShipped = ((await usedMemory(ctx.redis)) - base2) / sizes.memoryPairsSmall;
    } finally {
      await restore();
      await ctx.redis.flushall();
    }

    ctx.log(`  steady: ${sizes.flatPairs} job schedulers every ${sizes.flatIntervalMs} ms`);
    await upsert(sizes.flatPairs, sizes.flatIntervalMs);
    let worker = await startWorker();
    let steady: FloorWindow;
    let steadyProfile: CommandTime[];
    try {
      steady = await window(sizes.warmupMs, sizes.floorIntervals * sizes.flatIntervalMs);
      const events = createRedis(ctx.redisUrl, "consumer", "bench-floor-profile");
      const lag = await startLagRecorder(events, prefix);
      try {
        const names = await scriptNames(ctx.redis);
        steadyProfile = await profileCommands(ctx.redis, sizes.monitorMs, async () => lag.samples.length, names);
      } finally {
        await lag.close();
        await closeRedis(events);
      }
    } finally {
      await worker.stop();
    }
    await ctx.redis.flushall();

    ctx.log(`  saturated: ${sizes.saturationPairs} job schedulers every second`);
    await upsert(sizes.saturationPairs, 1_000);
    worker = await startWorker();
    let saturated: FloorWindow;
    try {
      saturated = await window(sizes.warmupMs, sizes.windowMs);
    } finally {
      await worker.stop();
    }
    return { upsertsPerSecond, bytesPerPair, bytesPerPairShipped, steady, steadyProfile, saturated };
  } finally {
    await queue.close();
    await closeRedis(conn);
    await ctx.redis.flushall();
  }
}
