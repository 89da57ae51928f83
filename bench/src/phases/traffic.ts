import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { closeRedis, createKeys, createRedis } from "@vmcp-keepalive/shared";
import { configDocument } from "../config.js";
import { BACKEND_ID, mark, sleep, type BenchContext } from "../context.js";
import { writeConfig } from "../processes.js";
import { registerInProcess, registeredMessage } from "../registration.js";
import { startWorker } from "./throughput.js";

export interface TrafficResult {
  readonly pairs: number;
  /** Backend calls per interval while half of the pairs carry traffic. */
  readonly callsPerInterval: number;
}

/**
 * Traffic-aware keepalive: `flatPairs` pairs at the flatness interval, half of whose sessions
 * call their backend all the time — the vMCP reports it with `touch(sessionId, { backendIds })`,
 * applied here through the scheduler's own store (a third of an interval apart, as a debounced
 * client would). Backend calls are counted over two intervals with one worker: the busy half
 * should cost none.
 */
export async function runTraffic(ctx: BenchContext): Promise<TrafficResult> {
  const { sizes } = ctx;
  const n = sizes.flatPairs;
  const interval = sizes.flatIntervalMs;
  await ctx.redis.flushall();
  const prefix = "bench-traffic";
  ctx.log(`  ${n} pairs at ${interval} ms, half of them busy`);
  await registerInProcess(ctx, prefix, n, interval, "tr");
  const conn = createRedis(ctx.redisUrl, "client", "bench-traffic");
  const store = createSessionStore(conn, createKeys(prefix));
  let stop = false;
  let sequence = 2;
  const busy = Array.from({ length: Math.floor(n / 2) }, (_, i) => registeredMessage(ctx, i * 2, "tr").sessionId);
  const touching = (async () => {
    while (!stop) {
      sequence++;
      const at = new Date().toISOString();
      for (let i = 0; i < busy.length; i += 200) {
        await Promise.all(busy.slice(i, i + 200).map((sessionId) => store.applyTouched({ type: "session.touched", v: 1, sessionId, occurredAt: at, sequence, backendIds: [BACKEND_ID] }, Date.now())));
      }
      await sleep(interval / 3);
    }
  })();
  const worker = await startWorker(ctx, writeConfig(ctx.dir, "traffic", configDocument(ctx, prefix, interval)), "worker-traffic");
  try {
    await sleep(interval);
    const from = await mark(ctx.backend);
    await sleep(2 * interval);
    const to = await mark(ctx.backend);
    return { pairs: n, callsPerInterval: ((to.callIndex - from.callIndex) * interval) / (to.at - from.at) };
  } finally {
    stop = true;
    await touching;
    await worker.stop();
    await closeRedis(conn);
    await ctx.redis.flushall();
  }
}
