import { configDocument, type BenchAuth } from "../config.js";
import { sleep, type BenchContext } from "../context.js";
import { countCommands, type MonitorCount } from "../measure/monitor.js";
import { commandCalls, diffCalls, redisCpuMs, sumCalls } from "../measure/redis-info.js";
import { PROGRAMS, startChild, waitForOutput, workerNodeFlags, writeConfig, type Child } from "../processes.js";
import { registerInProcess } from "../registration.js";
import { percentile } from "../measure/stats.js";
import { measureWindow, type RateResult } from "./plain.js";

export interface ThroughputResult {
  readonly oneWorker: RateResult;
  readonly twoWorkers: RateResult;
  /** Redis server CPU per keepalive (ms), one worker at saturation. */
  readonly redisCpuMsPerKeepalive: number;
  /** Commands Redis executed per keepalive, script-internal ones included (INFO commandstats). */
  readonly serverCommandsPerKeepalive: number;
  /** Client round trips per keepalive (MONITOR), one worker at saturation. */
  readonly roundTripsPerKeepalive: number;
  readonly monitor: MonitorCount & { readonly keepalives: number };
  readonly backendErrors: number;
}

/** Starts a worker process (`program`: another build's worker entry, to compare codes side by side). */
export async function startWorker(ctx: BenchContext, configPath: string, name: string, program: string = PROGRAMS.worker): Promise<Child> {
  const worker = startChild(name, program, ["--config", configPath], workerNodeFlags);
  await waitForOutput(worker, '"msg":"worker started"');
  return worker;
}

/**
 * Registers `sizes.saturationPairs` pairs at a 1 s interval under prefix `bench-<name>` and writes
 * the workers' config: due jobs always wait for a worker. Returns the config path. `auth`: how the
 * pairs' calls authenticate (default: no credentials).
 */
export async function seedSaturation(ctx: BenchContext, name: string, auth?: BenchAuth): Promise<string> {
  const prefix = `bench-${name}`;
  ctx.log(`  seeding ${ctx.sizes.saturationPairs} pairs at a 1 s interval${auth ? ` (auth: ${auth.mode})` : ""}`);
  await registerInProcess(ctx, prefix, ctx.sizes.saturationPairs, 1_000, name, auth);
  // A saturated worker runs every tick late by design; spreading them as after an outage would
  // measure fewer calls, not the pipeline's capacity.
  const document = configDocument(ctx, prefix, 300_000, auth);
  return writeConfig(ctx.dir, name, { ...document, keepalive: { ...(document["keepalive"] as object), catch_up: "at_once" } });
}

/**
 * End-to-end keepalives/s at saturation: many pairs with a 1 s interval, so due jobs always wait
 * for a worker; every keepalive is the full path (job scheduler → worker → lock → read → ping →
 * record → release → next job). With one worker process, then two.
 */
export async function runThroughput(ctx: BenchContext): Promise<ThroughputResult> {
  const { sizes } = ctx;
  const configPath = await seedSaturation(ctx, "tp");
  const workers: Child[] = [];
  try {
    workers.push(await startWorker(ctx, configPath, "worker-1"));
    await sleep(sizes.warmupMs);
    const cmd0 = await commandCalls(ctx.redis);
    const rcpu0 = await redisCpuMs(ctx.redis);
    const oneWorker = await measureWindow(ctx, [workers[0]!.pid], sizes.windowMs);
    const rcpu1 = await redisCpuMs(ctx.redis);
    const cmd1 = await commandCalls(ctx.redis);
    const serverCommands = sumCalls(diffCalls(cmd0, cmd1), ["info"]);

    const monitorStart = await ctx.backend.callCount();
    const monitor = await countCommands(ctx.redisUrl, sizes.monitorMs);
    const monitored = await ctx.backend.pingsBetween(monitorStart);

    workers.push(await startWorker(ctx, configPath, "worker-2"));
    await sleep(sizes.warmupMs);
    const twoWorkers = await measureWindow(
      ctx,
      workers.map((w) => w.pid),
      sizes.windowMs,
    );
    return {
      oneWorker,
      twoWorkers,
      redisCpuMsPerKeepalive: (rcpu1 - rcpu0) / oneWorker.count,
      serverCommandsPerKeepalive: serverCommands / oneWorker.count,
      roundTripsPerKeepalive: monitored > 0 ? monitor.clientCommands / monitored : NaN,
      monitor: { ...monitor, keepalives: monitored },
      backendErrors: await ctx.backend.errorsBetween(0),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
}

/** One measured window of one worker process at saturation on `configPath`: started, warmed up, measured, stopped. */
export async function workerWindow(
  ctx: BenchContext,
  configPath: string,
  name: string,
  program: string = PROGRAMS.worker,
): Promise<{ readonly perSecond: number; readonly cpuMsPerKeepalive: number; readonly redisUsPerKeepalive: number }> {
  const worker = await startWorker(ctx, configPath, name, program);
  try {
    await sleep(ctx.sizes.warmupMs);
    const r0 = await redisCpuMs(ctx.redis);
    const w = await measureWindow(ctx, [worker.pid], ctx.sizes.windowMs);
    const redisUsPerKeepalive = (((await redisCpuMs(ctx.redis)) - r0) * 1000) / Math.max(1, w.count);
    ctx.log(`  ${name}: ${w.perSecond.toFixed(0)} keepalives/s, worker CPU ${(w.cpuMsPer * 1000).toFixed(0)} µs, Redis CPU ${redisUsPerKeepalive.toFixed(0)} µs per keepalive`);
    return { perSecond: w.perSecond, cpuMsPerKeepalive: w.cpuMsPer, redisUsPerKeepalive };
  } finally {
    await worker.stop();
  }
}

/** Medians of the windows' rates and worker CPU per keepalive. */
export function medianWindow(windows: readonly { perSecond: number; cpuMsPerKeepalive: number }[]): { perSecond: number; cpuMsPerKeepalive: number } {
  return {
    perSecond: percentile(
      windows.map((w) => w.perSecond),
      50,
    ),
    cpuMsPerKeepalive: percentile(
      windows.map((w) => w.cpuMsPerKeepalive),
      50,
    ),
  };
}
