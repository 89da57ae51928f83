import { randomBytes } from "node:crypto";
import type { BenchAuth } from "../config.js";
import { sleep, type BenchContext } from "../context.js";
import { percentile } from "../measure/stats.js";
import { benchToken } from "../registration.js";
import { measureWindow } from "./plain.js";
import { seedSaturation, startWorker } from "./throughput.js";

export interface CredentialsRound {
  readonly auth: BenchAuth["mode"];
  readonly perSecond: number;
  readonly cpuMsPerKeepalive: number;
}

export interface CredentialsCompareResult {
  readonly rounds: readonly CredentialsRound[];
  /** Medians over the rounds. */
  readonly static: { readonly perSecond: number; readonly cpuMsPerKeepalive: number };
  readonly session: { readonly perSecond: number; readonly cpuMsPerKeepalive: number };
  /** session ÷ static worker CPU per keepalive (1.10 = 10 % more CPU). */
  readonly cpuRatio: number;
}

/**
 * Worker CPU per keepalive with session credentials (each pair's own 1 KB bearer token, sealed
 * with AES-256-GCM, opened by the worker for every call) against a static header of the same
 * size from the config, in alternating rounds: one worker process at saturation, the same Redis,
 * backend and pair count.
 */
export async function runCredentialsCompare(ctx: BenchContext, rounds = 3): Promise<CredentialsCompareResult> {
  const { sizes } = ctx;
  const configs = {
    static: await seedSaturation(ctx, "cred-static", { mode: "static", header: benchToken(0) }),
    session: await seedSaturation(ctx, "cred-session", { mode: "session", key: { id: "bench", key: randomBytes(32).toString("base64") } }),
  };
  const results: CredentialsRound[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const auth of ["static", "session"] as const) {
        const worker = await startWorker(ctx, configs[auth], `worker-${auth}-${round}`);
        try {
          await sleep(sizes.warmupMs);
          const w = await measureWindow(ctx, [worker.pid], sizes.windowMs);
          results.push({ auth, perSecond: w.perSecond, cpuMsPerKeepalive: w.cpuMsPer });
          ctx.log(`  ${auth} round ${round + 1}: ${w.perSecond.toFixed(0)} keepalives/s, worker CPU ${(w.cpuMsPer * 1000).toFixed(0)} µs per keepalive`);
        } finally {
          await worker.stop();
        }
      }
    }
  } finally {
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
  const median = (auth: BenchAuth["mode"]) => {
    const rs = results.filter((r) => r.auth === auth);
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
  const s = median("static");
  const c = median("session");
  return { rounds: results, static: s, session: c, cpuRatio: c.cpuMsPerKeepalive / s.cpuMsPerKeepalive };
}
