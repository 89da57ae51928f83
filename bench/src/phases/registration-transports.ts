import { configDocument } from "../config.js";
import type { BenchContext } from "../context.js";
import { PROGRAMS, schedulerNodeFlags, startChild, waitForOutput, writeConfig } from "../processes.js";
import { registerThroughQueue, registerThroughStream } from "../registration.js";

export interface RegistrationTransportsResult {
  readonly pairs: number;
  /** Pairs/s over all rounds through the `vmcp-sessions` queue. */
  readonly queuePairsPerSecond: number;
  /** Pairs/s over all rounds through the ingress stream. */
  readonly streamPairsPerSecond: number;
  readonly rounds: readonly { readonly transport: "queue" | "stream"; readonly pairsPerSecond: number; readonly ms: number }[];
}

/** Long interval: no keepalive job fires while registrations are measured. */
const INTERVAL_MS = 300_000;
const ROUNDS = 2;

/**
 * Registration rate through the `vmcp-sessions` queue and through the ingress stream, side by
 * side against one real scheduler process: `ROUNDS` alternating rounds of `registrationPairs`
 * each (queue first, then stream, and so on; each transport's rate is over all its rounds), each from the first
 * message added to the last job scheduler created. Alternating keeps drifts of the machine
 * (other load, Redis growing) out of the ratio.
 */
export async function runRegistrationTransports(ctx: BenchContext): Promise<RegistrationTransportsResult> {
  const n = ctx.sizes.registrationPairs;
  await ctx.redis.flushall();
  const prefix = "bench-reg";
  const configPath = writeConfig(ctx.dir, "registration", configDocument(ctx, prefix, INTERVAL_MS));
  const scheduler = startChild("scheduler", PROGRAMS.scheduler, ["--config", configPath], schedulerNodeFlags);
  const rounds: { transport: "queue" | "stream"; pairsPerSecond: number; ms: number }[] = [];
  try {
    await waitForOutput(scheduler, '"msg":"scheduler started"');
    for (let round = 0; round < ROUNDS; round++) {
      ctx.log(`  round ${round + 1}: ${n} registrations through vmcp-sessions`);
      rounds.push({ transport: "queue", ...(await registerThroughQueue(ctx, prefix, n, `rq${round}`, 120_000)) });
      ctx.log(`  round ${round + 1}: ${n} registrations through the ingress stream`);
      rounds.push({ transport: "stream", ...(await registerThroughStream(ctx, prefix, n, `rs${round}`, 120_000)) });
    }
  } finally {
    await scheduler.stop();
    await ctx.redis.flushall();
  }
  // Pairs over time of all rounds of a transport.
  const of = (t: "queue" | "stream") => {
    const mine = rounds.filter((r) => r.transport === t);
    return (mine.length * n * 1000) / mine.reduce((sum, r) => sum + r.ms, 0);
  };
  return { pairs: n, queuePairsPerSecond: of("queue"), streamPairsPerSecond: of("stream"), rounds };
}
