import type { BenchContext } from "../context.js";
import { PROGRAMS } from "../processes.js";
import { medianWindow, seedSaturation, workerWindow } from "./throughput.js";

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
  const configPath = await seedSaturation(ctx, "cmp");
  const results: WorkerCompareRound[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [code, program] of [
        ["baseline", baselineProgram],
        ["current", PROGRAMS.worker],
      ] as const) {
        const w = await workerWindow(ctx, configPath, `worker-${code}-${round + 1}`, program);
        results.push({ code, perSecond: w.perSecond, cpuMsPerKeepalive: w.cpuMsPerKeepalive });
      }
    }
  } finally {
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
  const of = (code: WorkerCompareRound["code"]) => medianWindow(results.filter((r) => r.code === code));
  const baseline = of("baseline");
  const current = of("current");
  return { baselineProgram, rounds: results, baseline, current, cpuRatio: current.cpuMsPerKeepalive / baseline.cpuMsPerKeepalive };
}
