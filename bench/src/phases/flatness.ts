import { createRedis, closeRedis } from "@vmcp-keepalive/shared";
import { configDocument } from "../config.js";
import { pingTimes, sleep, type BenchContext } from "../context.js";
import { startLagRecorder } from "../measure/lag-recorder.js";
import { countCommands } from "../measure/monitor.js";
import { redisCpuMs } from "../measure/redis-info.js";
import { flatness, percentile, type Flatness } from "../measure/stats.js";
import { totalCpuMs } from "../measure/proc-cpu.js";
import { PROGRAMS, startChild, waitForOutput, writeConfig, type Child } from "../processes.js";
import { registerThroughQueue } from "../registration.js";
import { startWorker } from "./throughput.js";

export interface WindowResult extends Flatness {
  readonly lagP50Ms: number;
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
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
  /** Client round trips per keepalive below saturation (MONITOR after the outage window). */
  readonly roundTripsPerKeepalive: number;
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
  const window = (from: number, to: number): WindowResult => {
    const lags = lag.between(from, to);
    const times = pingTimes(ctx.backend, from, to);
    return {
      ...flatness(times, from, to),
      lagP50Ms: percentile(lags, 50),
      lagP99Ms: percentile(lags, 99),
      lagMaxMs: lags.length ? Math.max(...lags) : NaN,
      keepalives: times.length,
      from,
      to,
    };
  };
  try {
    let worker = await startWorker(ctx, configPath, "worker");
    children.push(worker);
    const scheduler = startChild("scheduler", PROGRAMS.scheduler, ["--config", configPath]);
    children.push(scheduler);
    await waitForOutput(scheduler, '"msg":"scheduler started"');

    ctx.log(`  registering ${sizes.flatPairs} pairs at once (interval ${I} ms)`);
    const reg = await registerThroughQueue(ctx, prefix, sizes.flatPairs, "flat", 120_000);
    const registered = Date.now();
    const regWindowEnd = registered + I;
    await sleep(regWindowEnd - Date.now());

    ctx.log(`  steady: ${sizes.flatIntervals} intervals`);
    const steadyFrom = Date.now();
    const cpu0 = totalCpuMs([worker.pid]);
    const rcpu0 = await redisCpuMs(ctx.redis);
    await sleep(sizes.flatIntervals * I);
    const cpu1 = totalCpuMs([worker.pid]);
    const rcpu1 = await redisCpuMs(ctx.redis);
    const steadyTo = Date.now();

    ctx.log(`  worker outage: ${sizes.outageMs} ms`);
    await worker.kill();
    const killedAt = Date.now();
    await sleep(sizes.outageMs);
    worker = await startWorker(ctx, configPath, "worker-restarted");
    children.push(worker);
    const backAt = Date.now();
    await sleep(I + 500);

    const afterRegistration = window(registered, regWindowEnd);
    const steady = window(steadyFrom, steadyTo);
    const afterOutage = { ...window(backAt, backAt + I), outageMs: backAt - killedAt };

    const pingsBefore = ctx.backend.calls.length;
    const monitor = await countCommands(ctx.redisUrl, sizes.monitorMs);
    const monitored = ctx.backend.calls.slice(pingsBefore).filter((c) => c.method === "ping").length;
    return {
      afterRegistration,
      steady,
      afterOutage,
      registrationPairsPerSecond: reg.pairsPerSecond,
      workerCpuMsPerKeepalive: steady.keepalives > 0 ? (cpu1 - cpu0) / steady.keepalives : NaN,
      redisCpuMsPerKeepalive: steady.keepalives > 0 ? (rcpu1 - rcpu0) / steady.keepalives : NaN,
      roundTripsPerKeepalive: monitored > 0 ? monitor.clientCommands / monitored : NaN,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await lag.close();
    await closeRedis(eventsRedis);
    ctx.backend.calls.length = 0;
    await ctx.redis.flushall();
  }
}
