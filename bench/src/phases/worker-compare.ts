import { sleep, type BenchContext } from "../context.js";
import { PROGRAMS } from "../processes.js";
import { percentile } from "../measure/stats.js";
import { measureWindow } from "./plain.js";
import { seedSaturation, startWorker } from "./throughput.js";

export interface WorkerCompareRound {
  readonly code: "baseline" | "current";
  readonly perSecond: number;
  readonly cpuMsPerKeepalive: number;
}

export interface WorkerCompareResult {
  readonly baselineProgram: string;
  readonly rounds: readonly WorkerCompareRound[];
  /** Medians over the rounds. */
  readonly baseline: { readonly perSecond: number; readonly cpuMsPerKeepalive: number };
  readonly current: { readonly perSecond: number; readonly cpuMsPerKeepalive: number };
  /** current ÷ baseline worker CPU per keepalive (1.10 = 10 % more CPU). */
  readonly cpuRatio: number;
}

/**
 * Worker CPU per keepalive of two codes side by side: this checkout's worker and `baselineProgram`
 * (the worker entry of another build, e.g. a `git worktree` of an earlier commit, built), in
 * alternating rounds against the same Redis, pairs and backend, one worker process at saturation.
 * Alternating rounds spread the machine's drift over both codes.
 */
export async function runWorkerCompare(ctx: BenchContext, baselineProgram: string, rounds = 3): Promise<WorkerCompareResult> {
  const { sizes } = ctx;
  const configPath = await seedSaturation(ctx, "cmp");
  const results: WorkerCompareRound[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [code, program] of [
        ["baseline", baselineProgram],
        ["current", PROGRAMS.worker],
      ] as const) {
        const worker = await startWorker(ctx, configPath, `worker-${code}-${round}`, program);
        try {
          await sleep(sizes.warmupMs);
          const w = await measureWindow(ctx, [worker.pid], sizes.windowMs);
          results.push({ code, perSecond: w.perSecond, cpuMsPerKeepalive: w.cpuMsPer });
          ctx.log(`  ${code} round ${round + 1}: ${w.perSecond.toFixed(0)} keepalives/s, worker CPU ${(w.cpuMsPer * 1000).toFixed(0)} µs per keepalive`);
        } finally {
          await worker.stop();
        }
      }
    }
  } finally {
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
  const of = (code: WorkerCompareRound["code"]) => {
    const rs = results.filter((r) => r.code === code);
    return {
      perSecond: percentile(
        rs.map((r) => r.perSecond),
        50,
      ),
      cpuMsPerKeepalive: percentile(
        rs.map((r) => r.cpuMsPerKeepalive),
        50,
      ),
    };
  };
  const baseline = of("baseline");
  const current = of("current");
  return { baselineProgram, rounds: results, baseline, current, cpuRatio: current.cpuMsPerKeepalive / baseline.cpuMsPerKeepalive };
}
