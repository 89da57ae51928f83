import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import { Registry } from "prom-client";
import {
  closeInOrder,
  closeRedis,
  createLocker,
  createRedis,
  createVmcpEventPublisher,
  describeRedisTarget,
  KEEPALIVE_JOB_OPTIONS,
  parseSchedulerId,
  queueOptions,
  whenReady,
  schedulerId,
} from "@vmcp-keepalive/shared";
import {
  findBackend,
  keysOf,
  redisAnswers,
  requireRedisTarget,
  startOpsHttpServer,
  TypedEmitter,
  watchedStep,
  type KeepaliveConfig,
  type Logger,
  type OpsHttpServer,
  type Readiness,
} from "@vmcp-keepalive/runtime";
import { attachKeepaliveMetrics, createKeepaliveMetrics } from "./metrics/keepalive-metrics.js";
import { createBackendClient } from "./protocol/backend-client.js";
import { createTickStore } from "./store/tick-store.js";
import type { KeepaliveEventMap } from "./tick/keepalive-events.js";
import { runKeepalive, type KeepaliveDeps, type KeepaliveJobResult } from "./tick/run-tick.js";
import { catchUpFraction, overdueAfterMs, planCatchUp } from "./tick/catch-up.js";

export interface WorkerOptions {
  readonly config: KeepaliveConfig;
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly now?: () => number;
  /**
   * Serve /metrics, /healthz, /readyz here (main.ts passes `httpListenFor(config, "worker")`;
   * port 0 = ephemeral). Absent ⇒ no HTTP server, so tests can run several workers in one process.
   */
  readonly http?: { readonly host: string; readonly port: number; readonly portKey?: string };
}

export interface KeepaliveWorker {
  readonly events: TypedEmitter<KeepaliveEventMap>;
  readonly registry: Registry;
  /**
   * Runs one keepalive tick of a pair now, outside the queue, exactly as a job would (lock,
   * breaker, call, record).
   * @internal Exported for tests only (they drive ticks one at a time); not a feature.
   */
  _tick(sessionId: string, backendId: string): Promise<KeepaliveJobResult>;
  /** The ops HTTP server once started (when `http` was given): its bound port and URL. */
  readonly http: OpsHttpServer | undefined;
  /** What /readyz answers: Redis answers PING and the keepalive consumer runs. */
  readiness(): Promise<Readiness>;
  start(): Promise<void>;
  /** Stops taking jobs, lets in-flight calls finish (bounded by the call timeout), closes connections. */
  stop(): Promise<void>;
}

/** Scheduled time of a job-scheduler job, from its id `repeat:<schedulerId>:<millis>`. */
export function scheduledAt(job: Pick<Job, "id">): number | undefined {
  const tail = job.id?.slice(job.id.lastIndexOf(":") + 1);
  const ms = tail ? Number(tail) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * BullMQ job-lock and stall timings derived from the call timeout. A job a killed worker held is
 * handed on once its lock has expired and two stall checks have seen it (BullMQ marks it at one
 * check and moves it at the next): at most lockDuration + 2 × stalledInterval. BullMQ's defaults
 * (30 s, 30 s) make that 90 s. The job lock is renewed every lockDuration / 2 while a tick runs, so
 * it need not outlast a tick; a second above the call timeout, with checks at half that, makes a
 * killed worker's pairs wait at most one interval + 2 × lockDuration (README, Operations).
 */
export function jobTimings(config: KeepaliveConfig): { lockDuration: number; stalledInterval: number } {
  const lockDuration = Math.max(2_000, config.keepalive.timeoutMs + 1_000);
  return { lockDuration, stalledInterval: Math.max(1_000, Math.round(lockDuration / 2)) };
}

/**
 * Each shard's consumer takes an equal part of `keepalive.concurrency` (rounded up): pairs spread
 * evenly over the shards by the hash of their session id, so the parts are evenly loaded.
 */
export function shardConcurrency(config: KeepaliveConfig): number {
  return Math.max(1, Math.ceil(config.keepalive.concurrency / config.keepalive.shards));
}

export function createWorker(options: WorkerOptions): KeepaliveWorker {
  const { config, logger } = options;
  const target = requireRedisTarget(config);
  const log = logger.child({ component: "worker" });
  const registry = options.registry ?? new Registry();
  const now = options.now ?? Date.now;

  const consumerRedis = createRedis(target, "consumer", `vmk-worker-consumer@${config.redis.prefix}`);
  const clientRedis = createRedis(target, "client", `vmk-worker-client@${config.redis.prefix}`);
  // Lock nodes fail fast (no offline queue): a down node must vote against at once, not stall the tick.
  const lockTargets = config.lock.redisUrls.length > 0 ? config.lock.redisUrls : [target];
  const lockRedis = lockTargets.map((t, i) => createRedis(t, "client", `vmk-worker-lock-${i}@${config.redis.prefix}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 }));
  const keys = keysOf(config);
  const store = createTickStore(clientRedis, keys);
  const vmcpEvents = createVmcpEventPublisher(clientRedis, keys.eventsQueue);
  const locker = createLocker(lockRedis);
  // One queue handle per shard (to remove a pair's job scheduler); they share the client connection.
  const keepaliveQueues = Array.from({ length: keys.shards }, (_, shard) => {
    const where = keys.keepaliveQueue(shard);
    const queue = new Queue(where.name, queueOptions(clientRedis, where));
    queue.on("error", (err) => log.error({ err, queue: where.name }, "keepalive queue error"));
    return queue;
  });

  // One pool of keep-alive connections to the backends for every tick of this worker.
  const backendHttp = createBackendClient({ maxResponseBytes: config.keepalive.maxResponseBytes });
  const events = new TypedEmitter<KeepaliveEventMap>((event, err) => log.error({ err, event }, "event listener failed"));
  const metrics = createKeepaliveMetrics(registry);
  attachKeepaliveMetrics(events, metrics);

  // Logs subscribe like metrics do: failures and skips are logged by the core with their reason;
  // a success is one debug line (at info it would be one line per pair per interval).
  events.on("success", (e) => log.debug({ sessionId: e.sessionId, backendId: e.backendId, method: e.method, latencyMs: e.latencyMs }, "keepalive ok"));

  const deps: KeepaliveDeps = {
    config,
    keys,
    locker,
    store,
    events,
    log,
    now,
    removeScheduler: async (sessionId, backendId) => {
      await keepaliveQueues[keys.shardOf(sessionId)]!.removeJobScheduler(schedulerId(sessionId, backendId));
    },
    publishEvent: (event) => vmcpEvents.publish(event),
    backend: backendHttp,
    // Locks on the main Redis (no separate lock nodes): the lock rides in the tick's scripts,
    // two round trips less per keepalive (docs/benchmarks.md). Several nodes: Redlock quorum.
    lockInTick: config.lock.redisUrls.length === 0,
  };

  /**
   * An overdue tick — its time passed during an outage — is spread over the next interval instead
   * of firing with every other overdue tick (tick/catch-up.ts): put back until its catch-up slot,
   * or dropped when the pair's next regular tick comes first. Only on its first start: a tick put
   * back, or handed on after a worker died holding it, runs when it comes back.
   */
  const catchUp = async (job: Job, token: string | undefined, sessionId: string, backendId: string, at: number): Promise<KeepaliveJobResult | undefined> => {
    const backend = findBackend(config, backendId);
    const startedAt = job.processedOn ?? now();
    if (config.keepalive.catchUp === "at_once" || !backend || job.attemptsStarted > 1 || startedAt - at <= overdueAfterMs(backend.intervalMs)) return undefined;
    const plan = planCatchUp({
      scheduledAt: at,
      startedAt,
      now: now(),
      intervalMs: backend.intervalMs,
      sessionTtlMs: backend.sessionTtlMs,
      timeoutMs: config.keepalive.timeoutMs,
      aliveAt: await store.aliveAt(sessionId, backendId),
      fraction: catchUpFraction(sessionId, backendId, at),
    });
    if (plan.kind === "superseded") {
      events.emit("skipped", { backendId, sessionId, reason: "superseded" });
      return { outcome: "skipped", reason: "superseded" };
    }
    if (plan.kind === "defer" && token !== undefined) {
      await job.moveToDelayed(plan.at, token);
      events.emit("deferred", { backendId, sessionId, at: plan.at });
      throw new DelayedError();
    }
    return undefined;
  };

  const processor = async (job: Job, token?: string): Promise<KeepaliveJobResult> => {
    // Jobs carry no data: the pair is in the job scheduler's id `ka:<sessionId>:<backendId>`
    // (pair-scheduler.ts), its ids checked by parseSchedulerId.
    const pair = job.repeatJobKey ? parseSchedulerId(job.repeatJobKey) : undefined;
    if (!pair) {
      log.warn({ jobId: job.id, repeatJobKey: job.repeatJobKey }, "keepalive job that no pair's job scheduler made; rejected");
      throw new UnrecoverableError("not a keepalive job: it comes from no job scheduler ka:<sessionId>:<backendId>");
    }
    const { sessionId, backendId } = pair;
    const at = scheduledAt(job);
    if (at !== undefined) {
      // A catch-up that was put back (started before, never stalled) comes back late by design: not schedule lag.
      const putBack = job.attemptsStarted > 1 && job.stalledCounter === 0;
      if (!putBack) events.emit("scheduleLag", { backendId, lagMs: (job.processedOn ?? now()) - at });
      const caughtUp = await catchUp(job, token, sessionId, backendId, at);
      if (caughtUp) return caughtUp;
    }
    return runKeepalive(deps, sessionId, backendId);
  };

  const timings = jobTimings(config);
  const perShard = shardConcurrency(config);
  let workers: Worker[] = [];
  let stopping: Promise<void> | undefined;
  let http: OpsHttpServer | undefined;

  const readiness = async (): Promise<Readiness> => {
    const checks = {
      redis: await redisAnswers(clientRedis),
      consumer: workers.length === keys.shards && stopping === undefined && workers.every((w) => w.isRunning()) && consumerRedis.status === "ready",
    };
    return { ready: checks.redis && checks.consumer, checks };
  };

  return {
    events,
    registry,
    async _tick(sessionId, backendId) {
      await Promise.all(lockRedis.map((r) => whenReady(r, 5_000)));
      return runKeepalive(deps, sessionId, backendId);
    },
    get http() {
      return http;
    },
    readiness,
    async start() {
      // The lock clients run without an offline queue (a down node must vote against at once),
      // so a tick right after start-up would otherwise see lock_unavailable while they connect;
      // and /readyz reads the client connection.
      const [clientReady, ...ready] = await Promise.all([clientRedis, ...lockRedis].map((r) => whenReady(r, 5_000)));
      if (!clientReady) log.warn("Redis is not reachable yet; the worker keeps retrying and /readyz says so");
      if (ready.includes(false)) log.warn({ lockNodes: lockTargets.length }, "some lock nodes are not reachable yet; ticks skip as lock_unavailable until they are");
      // One consumer per shard's keepalive queue, each with its part of the concurrency.
      workers = Array.from({ length: keys.shards }, (_, shard) => {
        const where = keys.keepaliveQueue(shard);
        const worker = new Worker(where.name, processor, {
          connection: consumerRedis,
          prefix: where.prefix,
          concurrency: perShard,
          autorun: false,
          maxStalledCount: 1,
          // Retention lives here, not in each job's options (pair-scheduler.ts): jobs stay small.
          removeOnComplete: KEEPALIVE_JOB_OPTIONS.removeOnComplete,
          removeOnFail: KEEPALIVE_JOB_OPTIONS.removeOnFail,
          ...timings,
        });
        worker.on("error", (err) => log.error({ err, queue: where.name }, "keepalive worker error"));
        worker.on("failed", (job, err) => log.warn({ jobId: job?.id, queue: where.name, err: err.message }, "keepalive job failed"));
        void worker.run().catch((err: unknown) => log.error({ err, queue: where.name }, "keepalive worker stopped"));
        return worker;
      });
      await Promise.all(workers.map((w) => w.waitUntilReady()));
      if (options.http) {
        http = await startOpsHttpServer({ ...options.http, registry, readiness, log });
        log.info({ url: http.url, port: http.port, host: options.http.host }, "http server listening");
      }
      log.info(
        {
          redis: describeRedisTarget(target),
          shards: keys.shards,
          concurrency: config.keepalive.concurrency,
          concurrencyPerShard: perShard,
          timeoutMs: config.keepalive.timeoutMs,
          lockNodes: lockTargets.length,
          ...timings,
        },
        "worker started",
      );
    },
    stop() {
      stopping ??= (async () => {
        // close() waits for in-flight jobs; each is bounded by the call timeout and releases its lock.
        try {
          await closeInOrder([
            // In-flight ticks end within the call timeout (a fallback backend: two calls) and release their locks.
            watchedStep(log, "keepalive consumers", () => Promise.all(workers.map((w) => w.close())), { giveUpAfterMs: 2 * config.keepalive.timeoutMs + 3_000 }),
            async () => backendHttp.close(),
            http && (() => http!.close()),
            watchedStep(log, "keepalive queues", () => Promise.all(keepaliveQueues.map((q) => q.close()))),
            watchedStep(log, "events publisher", () => vmcpEvents.close()),
            ...[...lockRedis, clientRedis, consumerRedis].map((r) => () => closeRedis(r)),
          ]);
        } finally {
          log.info("worker stopped");
        }
      })();
      return stopping;
    },
  };
}
