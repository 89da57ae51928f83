import type { ClientArgs } from "../clients/sdk-clients.js";
import { mark, sleep, type BenchContext } from "../context.js";
import { totalCpuMs } from "../measure/proc-cpu.js";
import { PROGRAMS, startChild, waitForOutput, type Child } from "../processes.js";

export interface RateResult {
  readonly perSecond: number;
  readonly cpuMsPer: number;
  readonly count: number;
  readonly windowMs: number;
}

/** Counts backend pings and the CPU of `pids` over one window. */
export async function measureWindow(ctx: BenchContext, pids: readonly number[], windowMs: number): Promise<RateResult & { from: number; to: number; fromIndex: number; toIndex: number }> {
  const m0 = await mark(ctx.backend);
  const cpu0 = totalCpuMs(pids);
  await sleep(windowMs);
  const cpu1 = totalCpuMs(pids);
  const m1 = await mark(ctx.backend);
  const count = await ctx.backend.pingsBetween(m0.callIndex, m1.callIndex);
  const ms = m1.at - m0.at;
  return {
    perSecond: (count * 1000) / ms,
    cpuMsPer: count > 0 ? (cpu1 - cpu0) / count : NaN,
    count,
    windowMs: ms,
    from: m0.at,
    to: m1.at,
    fromIndex: m0.callIndex,
    toIndex: m1.callIndex,
  };
}

async function startClients(ctx: BenchContext, script: string, name: string, count: number, args: ClientArgs): Promise<Child[]> {
  const children = Array.from({ length: count }, (_, i) => startChild(`${name}-${i}`, script, [JSON.stringify({ ...args, firstSession: i * (args.concurrency ?? 0) })]));
  try {
    await Promise.all(children.map((c) => waitForOutput(c, "ready\n")));
  } catch (err) {
    await Promise.all(children.map((c) => c.kill()));
    throw err;
  }
  return children;
}

/** The plain SDK ping loop in `processes` processes, each at the bench concurrency. */
export async function runPlainLoop(ctx: BenchContext, processes: number): Promise<RateResult> {
  const { sizes } = ctx;
  const children = await startClients(ctx, PROGRAMS.plainLoop, "plain-loop", processes, {
    url: ctx.backend.url,
    sessions: ctx.sessions,
    concurrency: sizes.concurrency,
    timeoutMs: sizes.timeoutMs,
  });
  try {
    await sleep(sizes.warmupMs);
    return await measureWindow(
      ctx,
      children.map((c) => c.pid),
      sizes.windowMs,
    );
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await ctx.backend.clear();
  }
}

/** One process, one timer per pair, at the flatness run's pairs and interval (its rate). */
export async function runInProcessTimers(ctx: BenchContext): Promise<RateResult> {
  const { sizes } = ctx;
  const [child] = await startClients(ctx, PROGRAMS.inProcess, "in-process", 1, {
    url: ctx.backend.url,
    sessions: ctx.sessions,
    pairs: sizes.flatPairs,
    intervalMs: sizes.flatIntervalMs,
    timeoutMs: sizes.timeoutMs,
  });
  try {
    // Every timer has started after one interval.
    await sleep(sizes.flatIntervalMs + sizes.warmupMs);
    return await measureWindow(ctx, [child!.pid], Math.max(sizes.windowMs, sizes.flatIntervalMs));
  } finally {
    await child!.stop();
    await ctx.backend.clear();
  }
}
