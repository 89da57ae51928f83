import { randomBytes } from "node:crypto";
import { createCredentialKeyRing, decodePair, type CredentialKey } from "@vmcp-keepalive/shared";
import { openPairCredentials } from "@vmcp-keepalive/worker/internal";
import type { BenchAuth } from "../config.js";
import type { BenchContext } from "../context.js";
import { percentile } from "../measure/stats.js";
import { benchToken } from "../registration.js";
import { medianWindow, seedSaturation, workerWindow } from "./throughput.js";

export interface CredentialsRound {
  readonly auth: BenchAuth["mode"];
  readonly perSecond: number;
  readonly cpuMsPerKeepalive: number;
  /** Redis CPU per keepalive in the same window (µs): the envelope makes the pair hash larger. */
  readonly redisUsPerKeepalive: number;
}

export interface CredentialsCompareResult {
  readonly rounds: readonly CredentialsRound[];
  /** Medians over the rounds. */
  readonly static: { readonly perSecond: number; readonly cpuMsPerKeepalive: number };
  readonly session: { readonly perSecond: number; readonly cpuMsPerKeepalive: number };
  /**
   * session ÷ static worker CPU per keepalive (1.10 = 10 % more CPU): the median over the blocks
   * of (its two session windows) ÷ (its two static windows). Each block runs static, session,
   * session, static, so that a drift of the machine over the phase — the SDK backend slows as it
   * retains memory per request, often by more than the difference measured — cancels.
   */
  readonly cpuRatio: number;
  /** What opening one pair's credentials costs the worker, in-process (decode the pair, parse the envelope, AES-GCM, check the headers), µs. */
  readonly openUs: number;
}

/** µs per open of one pair's sealed 1 KB token, as a worker's tick does it (in this process, 20,000 opens after 2,000 warm-up). */
export function measureOpen(key: CredentialKey, n = 20_000): number {
  const ring = createCredentialKeyRing([key]);
  const sessionId = "cred-0000001-4000-8000-000000000000".slice(0, 36);
  const hash = {
    epoch: "1",
    bsid: "backend-session",
    cred: JSON.stringify(ring.seal(sessionId, "bench", { headers: { Authorization: benchToken(1) }, expiresAt: Date.now() + 86_400_000 })),
    credSeq: "1",
  };
  const once = () => {
    const opened = openPairCredentials(ring, decodePair(hash, sessionId, "bench")!);
    if (!("headers" in opened)) throw new Error("the bench's own credentials did not open");
  };
  for (let i = 0; i < 2_000; i++) once();
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) once();
  return Number(process.hrtime.bigint() - started) / n / 1_000;
}

/**
 * Worker CPU per keepalive with session credentials (each pair's own 1 KB bearer token, sealed
 * with AES-256-GCM, opened by the worker for every call) against a static header of the same
 * size from the config, in blocks of four windows (static, session, session, static): one worker
 * process at saturation, the same Redis, backend and pair count. Then the open alone,
 * in-process, where the machine's noise is small.
 */
export async function runCredentialsCompare(ctx: BenchContext, blocks = ctx.sizes.mode === "smoke" ? 1 : 3): Promise<CredentialsCompareResult> {
  const key = { id: "bench", key: randomBytes(32).toString("base64") };
  const configs = {
    static: await seedSaturation(ctx, "cred-static", { mode: "static", header: benchToken(0) }),
    session: await seedSaturation(ctx, "cred-session", { mode: "session", key }),
  };
  const results: CredentialsRound[] = [];
  try {
    for (let block = 0; block < blocks; block++) {
      for (const [i, auth] of (["static", "session", "session", "static"] as const).entries()) {
        const round = block * 2 + (i < 2 ? 1 : 2);
        results.push({ auth, ...(await workerWindow(ctx, configs[auth], `worker-${auth}-${round}`)) });
      }
    }
  } finally {
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
  const s = medianWindow(results.filter((r) => r.auth === "static"));
  const c = medianWindow(results.filter((r) => r.auth === "session"));
  const cpu = (i: number) => results[i]!.cpuMsPerKeepalive;
  const blockRatios = Array.from({ length: blocks }, (_, b) => (cpu(4 * b + 1) + cpu(4 * b + 2)) / (cpu(4 * b) + cpu(4 * b + 3)));
  return { rounds: results, static: s, session: c, cpuRatio: percentile(blockRatios, 50), openUs: measureOpen(key) };
}
