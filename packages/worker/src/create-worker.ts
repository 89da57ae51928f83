import { Queue, Worker, type Job } from "bullmq";
import { Registry } from "prom-client";
import {
  closeInOrder,
  closeRedis,
  createCredentialKeyRing,
  createRedis,
  createVmcpEventPublisher,
  describeRedisTarget,
  KEEPALIVE_JOB_OPTIONS,
  queueOptions,
  whenReady,
  schedulerId,
  type CredentialKeyRing,
} from "@vmcp-keepalive/shared";
import {
  createRedisHealth,
  keysOf,
  lockTargetsOf,
  redisAnswers,
  requireRedisTarget,
  startOpsHttpServer,
  TypedEmitter,
  UsageError,
  watchedStep,
  type KeepaliveConfig,
  type Logger,
  type OpsHttpServer,
  type Readiness,
  type RedisHealth,
} from "@vmcp-keepalive/runtime";

/** The name of the main Redis in logs and `/readyz` causes. */
const MAIN_REDIS = "main Redis";
import { attachKeepaliveMetrics, createKeepaliveMetrics } from "./metrics/keepalive-metrics.js";
import { createBackendClient } from "./protocol/backend-client.js";
import { createTickStore } from "./store/tick-store.js";
import type { KeepaliveEventMap } from "./tick/keepalive-events.js";
import { processKeepaliveJob } from "./tick/keepalive-job.js";
import { createTickLockStrategy } from "./tick/tick-lock.js";
import { runKeepalive, type KeepaliveDeps, type KeepaliveJobResult } from "./tick/run-tick.js";

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

/**
 * What a worker runs keepalive jobs with: its Redis connections (state, lock nodes), the pair lock
 * strategy, the tick store, the backend HTTP client, the core's events with metrics and logs
 * subscribed, and the `vmcp-events` publisher. {@link createWorker} feeds it from BullMQ
 * consumers; on its own it runs ticks one at a time, in order (how the tests drive it).
 */
export interface TickRunner {
  readonly events: TypedEmitter<KeepaliveEventMap>;
  readonly registry: Registry;
  /** Runs one keepalive job from a keepalive queue (catch-up, then the tick). */
  processJob(job: Job, token: string | undefined): Promise<KeepaliveJobResult>;
  /** Runs one keepalive tick of a pair now: lock, breaker, call, record — what a job does when it is not overdue. */
  run(sessionId: string, backendId: string): Promise<KeepaliveJobResult>;
  /** Waits until the state and lock connections are up (false for those that are not within 5 s). */
  ready(): Promise<{ state: boolean; lockNodes: boolean }>;
  /** Answers PING on the state connection. */
  redisAnswers(): Promise<boolean>;
  close(): Promise<void>;
}

export interface KeepaliveWorker {
  readonly events: TypedEmitter<KeepaliveEventMap>;
  readonly registry: Registry;
  /** The ops HTTP server once started (when `http` was given): its bound port and URL. */
  readonly http: OpsHttpServer | undefined;
  /** What /readyz answers: Redis answers PING and the keepalive consumer runs. */
  readiness(): Promise<Readiness>;
  start(): Promise<void>;
  /** Stops taking jobs, lets in-flight calls finish (bounded by the call timeout), closes connections. */
  stop(): Promise<void>;
}

/**
 * BullMQ job-lock and stall timings derived from the call timeout. A job a killed worker held is
 * handed on once its lock has expired and two stall checks have seen it (BullMQ marks it at one
 * check and moves it at the next): at most lockDuration + 2 × stalledInterval. BullMQ's defaults
 * (30 s, 30 s) make that 90 s. The job lock is renewed every lockDuration / 2 while a tick runs, so
 * it need not outlast a tick; a second above the call timeout, with checks at half that, makes a
 * killed worker's pairs wait at most one interval + 2 × lockDuration (docs/operations.md).
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

/** The ring that opens session credentials; a worker with `auth: session` backends cannot run without one. */
function credentialRing(config: KeepaliveConfig): CredentialKeyRing | undefined {
  const needing = config.backends.filter((b) => b.auth === "session").map((b) => b.id);
  if (config.credentials.keys.length === 0) {
    if (needing.length === 0) return undefined;
    throw new UsageError(
      `credentials.keys: empty, but backend${needing.length > 1 ? "s" : ""} ${needing.join(", ")} use${needing.length > 1 ? "" : "s"} auth: session (the worker could open no pair's credentials)`,
    );
  }
  return createCredentialKeyRing(config.credentials.keys);
}

export function createTickRunner(options: Omit<WorkerOptions, "http"> & { readonly health?: RedisHealth }): TickRunner {
  const { config, logger } = options;
  const log = logger.child({ component: "worker" });
  const registry = options.registry ?? new Registry();
  const now = options.now ?? Date.now;
  const credentials = credentialRing(config);

  const health = options.health ?? createRedisHealth(log);
  const clientRedis = createRedis(requireRedisTarget(config), "client", `vmk-worker-client@${config.redis.prefix}`);
  health.watch(clientRedis, MAIN_REDIS);
  // Lock nodes fail fast (no offline queue): a down node must vote against at once, not stall the tick.
  const lockRedis = lockTargetsOf(config).map((t, i) => {
    const node = createRedis(t, "client", `vmk-worker-lock-${i}@${config.redis.prefix}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    health.watch(node, `lock node ${i}`);
    return node;
  });
  const keys = keysOf(config);
  const vmcpEvents = createVmcpEventPublisher(clientRedis, keys.eventsQueue, { key: keys.sessionEventsStream, maxLen: config.streams.eventsMaxLen });
  // One queue handle per shard (to remove a pair's job scheduler); they share the client connection.
  const keepaliveQueues = Array.from({ length: keys.shards }, (_, shard) => {
    const where = keys.keepaliveQueue(shard);
    const queue = new Queue(where.name, queueOptions(clientRedis, where));
    queue.on("error", (err) => health.report(MAIN_REDIS, err));
    return queue;
  });

  // One pool of keep-alive connections to the backends for every tick of this worker.
  const backendHttp = createBackendClient({ maxResponseBytes: config.keepalive.maxResponseBytes });
  const events = new TypedEmitter<KeepaliveEventMap>((event, err) => log.error({ err, event }, "event listener failed"));
  attachKeepaliveMetrics(events, createKeepaliveMetrics(registry));
  // Logs subscribe like metrics do: failures and skips are logged by the core with their reason;
  // a success is one debug line (at info it would be one line per pair per interval).
  events.on("success", (e) => log.debug({ sessionId: e.sessionId, backendId: e.backendId, method: e.method, latencyMs: e.latencyMs }, "keepalive ok"));

  const deps: KeepaliveDeps = {
    config,
    keys,
    lock: createTickLockStrategy(clientRedis, lockRedis, now),
    store: createTickStore(clientRedis, keys),
    events,
    log,
    now,
    removeScheduler: async (sessionId, backendId) => {
      await keepaliveQueues[keys.shardOf(sessionId)]!.removeJobScheduler(schedulerId(sessionId, backendId));
    },
    publishEvent: (event) => vmcpEvents.publish(event),
    backend: backendHttp,
    credentials,
    firstNotice: firstNoticeOf(10_000),
  };

  return {
    events,
    registry,
    processJob: (job, token) => processKeepaliveJob(deps, job, token),
    run: (sessionId, backendId) => runKeepalive(deps, sessionId, backendId),
    async ready() {
      // The lock clients run without an offline queue (a down node must vote against at once), so
      // a tick right after start-up would otherwise see lock_unavailable while they connect.
      const [state, ...nodes] = await Promise.all([clientRedis, ...lockRedis].map((r) => whenReady(r, 5_000)));
      return { state: state === true, lockNodes: !nodes.includes(false) };
    },
    redisAnswers: () => redisAnswers(clientRedis),
    async close() {
      await closeInOrder([
        async () => backendHttp.close(),
        watchedStep(log, "keepalive queues", () => Promise.all(keepaliveQueues.map((q) => q.close()))),
        watchedStep(log, "events publisher", () => vmcpEvents.close()),
        ...[...lockRedis, clientRedis].map((r) => () => closeRedis(r)),
      ]);
    },
  };
}

export function createWorker(options: WorkerOptions): KeepaliveWorker {
  const { config, logger } = options;
  const target = requireRedisTarget(config);
  const log = logger.child({ component: "worker" });
  const health = createRedisHealth(log);
  const ticks = createTickRunner({ ...options, health });
  const keys = keysOf(config);
  const consumerRedis = createRedis(target, "consumer", `vmk-worker-consumer@${config.redis.prefix}`);
  health.watch(consumerRedis, MAIN_REDIS);

  const timings = jobTimings(config);
  const perShard = shardConcurrency(config);
  let workers: Worker[] = [];
  let stopping: Promise<void> | undefined;
  let http: OpsHttpServer | undefined;

  const readiness = async (): Promise<Readiness> => {
    const checks = {
      redis: await ticks.redisAnswers(),
      consumer: workers.length === keys.shards && stopping === undefined && workers.every((w) => w.isRunning()) && consumerRedis.status === "ready",
    };
    const causes = health.causes();
    return { ready: checks.redis && checks.consumer, checks, ...(Object.keys(causes).length > 0 ? { causes } : {}) };
  };

  return {
    events: ticks.events,
    registry: ticks.registry,
    get http() {
      return http;
    },
    readiness,
    async start() {
      // HTTP first: while Redis cannot be reached (down, TLS or credentials refused), /readyz
      // already answers, with the cause, and /metrics is scraped.
      if (options.http) {
        http = await startOpsHttpServer({ ...options.http, registry: ticks.registry, readiness, log });
        log.info({ url: http.url, port: http.port, host: options.http.host }, "http server listening");
      }
      const ready = await ticks.ready();
      if (!ready.state) log.warn("Redis is not reachable yet; the worker keeps retrying and /readyz says so");
      if (!ready.lockNodes) log.warn({ lockNodes: config.lock.redisUrls.length }, "some lock nodes are not reachable yet; ticks skip as lock_unavailable until they are");
      // One consumer per shard's keepalive queue, each with its part of the concurrency.
      workers = Array.from({ length: keys.shards }, (_, shard) => {
        const where = keys.keepaliveQueue(shard);
        const worker = new Worker(where.name, (job: Job, token?: string) => ticks.processJob(job, token), {
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
        worker.on("error", (err) => health.report(MAIN_REDIS, err));
        worker.on("failed", (job, err) => log.warn({ jobId: job?.id, queue: where.name, err: err.message }, "keepalive job failed"));
        void worker.run().catch((err: unknown) => log.error({ err, queue: where.name }, "keepalive worker stopped"));
        return worker;
      });
      await Promise.all(workers.map((w) => w.waitUntilReady()));
      log.info(
        {
          redis: describeRedisTarget(target),
          shards: keys.shards,
          concurrency: config.keepalive.concurrency,
          concurrencyPerShard: perShard,
          timeoutMs: config.keepalive.timeoutMs,
          lock: config.lock.redisUrls.length === 0 ? "in-script" : `redlock over ${config.lock.redisUrls.length} nodes`,
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
            http && (() => http!.close()),
            () => ticks.close(),
            () => closeRedis(consumerRedis),
          ]);
        } finally {
          log.info("worker stopped");
        }
      })();
      return stopping;
    },
  };
}

/**
 * Remembers up to `capacity` keys (then starts over): a line said once per key stays said once
 * while the worker sees fewer keys than that, and memory stays bounded when it sees more.
 */
function firstNoticeOf(capacity: number): (key: string) => boolean {
  const seen = new Set<string>();
  return (key) => {
    if (seen.has(key)) return false;
    if (seen.size >= capacity) seen.clear();
    seen.add(key);
    return true;
  };
}
