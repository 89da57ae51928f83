import { Queue } from "bullmq";
import { closeRedis, createRedis, queueOptions, QUEUE_SESSIONS, SESSION_MESSAGE_JOB_OPTIONS } from "@vmcp-keepalive/shared";
import { configDocument } from "../config.js";
import { sleep, type BenchContext } from "../context.js";
import { processCpuMs } from "../measure/proc-cpu.js";
import { redisCpuMs } from "../measure/redis-info.js";
import { PROGRAMS, schedulerNodeFlags, startChild, waitForOutput, writeConfig } from "../processes.js";
import { registerInProcess, registeredMessage } from "../registration.js";

export interface RefreshResult {
  readonly sessions: number;
  /** Refresh messages applied per second by one scheduler process. */
  readonly perSecond: number;
  readonly redisCpuUsPerRefresh: number;
  readonly schedulerCpuUsPerRefresh: number;
}

/** Interval of the registered pairs: long, so no keepalive runs while refreshes are measured. */
const INTERVAL_MS = 300_000;

/**
 * What the vMCP's soft-state refresh costs: `n` live sessions registered (in-process), then one
 * refresh of each — the same registration with a new sequence, as `createVmcpClient` sends it —
 * through `vmcp-sessions` and one real scheduler process. Redis CPU (INFO) and the scheduler's
 * CPU (/proc) over the refresh window, per message.
 */
export async function runRefresh(ctx: BenchContext): Promise<RefreshResult> {
  const n = ctx.sizes.refreshSessions;
  await ctx.redis.flushall();
  const prefix = "bench-refresh";
  ctx.log(`  registering ${n} sessions in-process`);
  await registerInProcess(ctx, prefix, n, INTERVAL_MS, "rf");
  const configPath = writeConfig(ctx.dir, "refresh", configDocument(ctx, prefix, INTERVAL_MS));
  const scheduler = startChild("scheduler", PROGRAMS.scheduler, ["--config", configPath], schedulerNodeFlags);
  const conn = createRedis(ctx.redisUrl, "client", "bench-refresh");
  const queue = new Queue(QUEUE_SESSIONS, queueOptions(conn, prefix));
  queue.on("error", () => {});
  try {
    await waitForOutput(scheduler, '"msg":"scheduler started"');
    await sleep(500);
    const messages = Array.from({ length: n }, (_, i) => ({ ...registeredMessage(ctx, i, "rf"), sequence: 2 }));
    const redisBefore = await redisCpuMs(ctx.redis);
    const schedulerBefore = processCpuMs(scheduler.pid);
    const started = Date.now();
    ctx.log(`  ${n} refreshes through vmcp-sessions and one scheduler process`);
    for (let i = 0; i < n; i += 1_000) {
      await queue.addBulk(messages.slice(i, i + 1_000).map((m) => ({ name: m.type, data: m, opts: SESSION_MESSAGE_JOB_OPTIONS })));
    }
    const deadline = started + 600_000;
    for (;;) {
      const counts = await queue.getJobCounts("wait", "active", "delayed");
      if ((counts["wait"] ?? 0) + (counts["active"] ?? 0) + (counts["delayed"] ?? 0) === 0) break;
      if (Date.now() > deadline) throw new Error(`${n} refreshes did not finish within 600 s`);
      await sleep(50);
    }
    const ms = Date.now() - started;
    return {
      sessions: n,
      perSecond: (n * 1000) / ms,
      redisCpuUsPerRefresh: (((await redisCpuMs(ctx.redis)) - redisBefore) * 1000) / n,
      schedulerCpuUsPerRefresh: ((processCpuMs(scheduler.pid) - schedulerBefore) * 1000) / n,
    };
  } finally {
    await queue.close();
    await closeRedis(conn);
    await scheduler.stop();
    await ctx.redis.flushall();
  }
}
