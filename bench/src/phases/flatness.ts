import { spawn } from "node:child_process";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { createRedis, closeRedis } from "@vmcp-keepalive/shared";
import { configDocument } from "../config.js";
import { sleep, type BenchContext } from "../context.js";
import { startLagRecorder } from "../measure/lag-recorder.js";
import { countCommands } from "../measure/monitor.js";
import { commandCostPerKeepalive, commandStats, redisCpuMs } from "../measure/redis-info.js";
import { profileCommands, scriptNames, type CommandTime } from "../measure/script-profile.js";
import { flatness, percentile, type Flatness } from "../measure/stats.js";
import { totalCpuMs } from "../measure/proc-cpu.js";
import { PROGRAMS, schedulerNodeFlags, startChild, waitForOutput, writeConfig, type Child } from "../processes.js";
import { registerThroughQueue } from "../registration.js";
import { startWorker } from "./throughput.js";

export interface WindowResult extends Flatness {
  readonly lagP50Ms: number;
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
  /** Largest schedule lag of the jobs that started in each whole second of the window. */
  readonly lagMaxPerSecondMs: readonly number[];
  readonly keepalives: number;
  readonly from: number;
  readonly to: number;
}

export interface FlatnessResult {
  readonly afterRegistration: WindowResult;
  readonly steady: WindowResult;
  readonly afterOutage: WindowResult & { readonly outageMs: number };
  /** Registration rate of this run (a worker running alongside). */
  readonly registrationPairsPerSecond: number;
  /** Worker CPU per keepalive over the steady window (below saturation). */
  readonly workerCpuMsPerKeepalive: number;
  readonly redisCpuMsPerKeepalive: number;
  /** Steady window, `INFO commandstats`: calls and server µs per keepalive of the costliest commands (EVALSHA's time includes its scripts' own calls). */
  readonly steadyCommandCost: { command: string; callsPerKeepalive: number; usPerKeepalive: number }[];
  /** A short window after the steady one, SLOWLOG at 0 µs: each command's and each script's (ours, BullMQ's) execution time per keepalive. */
  readonly steadyProfile: CommandTime[];
  /** Client round trips per keepalive below saturation (MONITOR right after the steady window). */
  readonly roundTripsPerKeepalive: number;
  /**
   * Stalls seen during the steady window, to tell a stall of this system from one of the bench:
   * the MCP backend's process and the bench process (which reads the lag events) — longest
   * event-loop delay, GC pauses of the bench process over 50 ms — and Redis (`LATENCY LATEST`,
   * threshold 50 ms).
   */
  readonly steadyStalls: {
    readonly backendLoopDelayMaxMs: number;
    readonly benchLoopDelayMaxMs: number;
    readonly benchGcPausesMs: readonly { readonly atMs: number; readonly ms: number }[];
    readonly redisLatency: unknown;
    /**
     * Longest lateness of a 10 ms timer in an otherwise idle separate process: a stall there too
     * means the whole machine paused (a shared VM), not this system or the bench.
     */
    readonly idleProcessStallMaxMs: number;
  };
}

/**
 * N pairs at interval I through the real programs: mass registration through `vmcp-sessions`
 * with a worker running, the first interval after it, then steady intervals, then a worker
 * outage (SIGKILL, as a crash) and the interval after the worker is back.
 */
export async function runFlatness(ctx: BenchContext): Promise<FlatnessResult> {
  const { sizes } = ctx;
  const I = sizes.flatIntervalMs;
  const prefix = "bench-flat";
  await ctx.redis.flushall();
  const configPath = writeConfig(ctx.dir, "flatness", configDocument(ctx, prefix, I));
  const eventsRedis = createRedis(ctx.redisUrl, "consumer", "bench-lag");
  const lag = await startLagRecorder(eventsRedis, prefix);
  const children: Child[] = [];
  const window = async (from: number, to: number): Promise<WindowResult> => {
    const lags = lag.between(from, to);
    const times = await ctx.backend.pingTimes(from, to);
    return {
      ...flatness(times, from, to),
      lagP50Ms: percentile(lags, 50),
      lagP99Ms: percentile(lags, 99),
      lagMaxMs: lags.length ? Math.max(...lags) : NaN,
      lagMaxPerSecondMs: lag.maxPerSecond(from, to),
      keepalives: times.length,
      from,
      to,
    };
  };
  try {
    let worker = await startWorker(ctx, configPath, "worker");
    children.push(worker);
    const scheduler = startChild("scheduler", PROGRAMS.scheduler, ["--config", configPath], schedulerNodeFlags);
    children.push(scheduler);
    await waitForOutput(scheduler, '"msg":"scheduler started"');

    ctx.log(`  registering ${sizes.flatPairs} pairs at once (interval ${I} ms)`);
    const reg = await registerThroughQueue(ctx, prefix, sizes.flatPairs, "flat", 120_000);
    const registered = Date.now();
    const regWindowEnd = registered + I;
    await sleep(regWindowEnd - Date.now());

    ctx.log(`  steady: ${sizes.flatIntervals} intervals`);
    await ctx.redis.config("SET", "latency-monitor-threshold", "50");
    await ctx.redis.call("LATENCY", "RESET");
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    const gcPauses: { atMs: number; ms: number }[] = [];
    const gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.duration > 50) gcPauses.push({ atMs: Math.round(performance.timeOrigin + e.startTime - steadyFrom), ms: Math.round(e.duration) });
    });
    const idle = startIdleWatch();
    await ctx.backend.loopDelayMaxMs();
    const steadyFrom = Date.now();
    loopDelay.enable();
    gcObserver.observe({ entryTypes: ["gc"] });
    const cpu0 = totalCpuMs([worker.pid]);
    const rcpu0 = await redisCpuMs(ctx.redis);
    const stats0 = await commandStats(ctx.redis);
    await sleep(sizes.flatIntervals * I);
    const cpu1 = totalCpuMs([worker.pid]);
    const rcpu1 = await redisCpuMs(ctx.redis);
    const stats1 = await commandStats(ctx.redis);
    const steadyTo = Date.now();
    loopDelay.disable();
    gcObserver.disconnect();
    const steadyStalls = {
      backendLoopDelayMaxMs: await ctx.backend.loopDelayMaxMs(),
      benchLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
      benchGcPausesMs: gcPauses,
      redisLatency: await ctx.redis.call("LATENCY", "LATEST"),
      idleProcessStallMaxMs: await idle.stop(),
    };

    // Two short instrumented windows at the steady rate (both slow Redis down, so neither overlaps
    // a timed window): MONITOR for the round trips, SLOWLOG for where Redis' time goes.
    const pingsBefore = await ctx.backend.callCount();
    const monitor = await countCommands(ctx.redisUrl, sizes.monitorMs);
    const monitored = await ctx.backend.pingsBetween(pingsBefore);
    const names = await scriptNames(ctx.redis);
    const profileFrom = await ctx.backend.callCount();
    const steadyProfile = await profileCommands(ctx.redis, sizes.monitorMs, () => ctx.backend.pingsBetween(profileFrom), names);

    ctx.log(`  worker outage: ${sizes.outageMs} ms`);
    await worker.kill();
    const killedAt = Date.now();
    await sleep(sizes.outageMs);
    worker = await startWorker(ctx, configPath, "worker-restarted");
    children.push(worker);
    const backAt = Date.now();
    await sleep(I + 500);

    const afterRegistration = await window(registered, regWindowEnd);
    const steady = await window(steadyFrom, steadyTo);
    const afterOutage = { ...(await window(backAt, backAt + I)), outageMs: backAt - killedAt };

    return {
      afterRegistration,
      steady,
      afterOutage,
      registrationPairsPerSecond: reg.pairsPerSecond,
      workerCpuMsPerKeepalive: steady.keepalives > 0 ? (cpu1 - cpu0) / steady.keepalives : NaN,
      redisCpuMsPerKeepalive: steady.keepalives > 0 ? (rcpu1 - rcpu0) / steady.keepalives : NaN,
      steadyCommandCost: commandCostPerKeepalive(stats0, stats1, Math.max(1, steady.keepalives)),
      steadyProfile,
      roundTripsPerKeepalive: monitored > 0 ? monitor.clientCommands / monitored : NaN,
      steadyStalls,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await lag.close();
    await closeRedis(eventsRedis);
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
}

/** A separate node process that only runs a 10 ms timer and reports the most it was late. */
function startIdleWatch(): { stop(): Promise<number> } {
  const code =
    "let last=performance.now(),max=0;setInterval(()=>{const n=performance.now();max=Math.max(max,n-last-10);last=n},10);process.on('SIGTERM',()=>{process.stdout.write(String(Math.round(max)));process.exit(0)})";
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  return {
    stop: () =>
      new Promise<number>((resolve) => {
        child.once("exit", () => resolve(Number(out) || NaN));
        child.kill("SIGTERM");
      }),
  };
}
