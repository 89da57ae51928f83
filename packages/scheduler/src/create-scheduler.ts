import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { Queue, type Worker } from "bullmq";
import { Registry } from "prom-client";
import { closeInOrder, closeRedis, createLocker, createRedis, describeRedisTarget, queueOptions, STREAM_SCHEDULER_GROUP, whenReady, type QueueLocation } from "@vmcp-keepalive/shared";
import type { RegistrationEventMap } from "./registrations/registration-events.js";
import { createSessionStore, type SessionStore } from "./store/session-store.js";
import {
  createRedisHealth,
  isLoopbackHost,
  keysOf,
  redisAnswers,
  requireRedisTarget,
  startOpsHttpServer,
  TypedEmitter,
  watchedStep,
  UsageError,
  type OpsHttpServer,
  type Readiness,
  type KeepaliveConfig,
  type Logger,
} from "@vmcp-keepalive/runtime";

/** The name of the main Redis in logs and `/readyz` causes. */
const MAIN_REDIS = "main Redis";
import { createRegistrationConsumer } from "./registrations/registration-consumer.js";
import { createStreamConsumer, type StreamConsumer } from "./registrations/stream-consumer.js";
import { createPairScheduler, type PairScheduler } from "./scheduling/pair-scheduler.js";
import { createSchedulerMetrics } from "./scheduler-metrics.js";
import { createSessionReaper, type SessionReaper } from "./reaper/session-reaper.js";
import { createReconciler, type Reconciler } from "./reconcile/reconciler.js";
import { BULL_BOARD_PATH, createBullBoardMount } from "./http/bull-board.js";
import { createSchedulerOpsMetrics } from "./http/scheduler-ops-metrics.js";

export interface SchedulerOptions {
  readonly config: KeepaliveConfig;
  readonly logger: Logger;
  /** Metrics registry of this process. @defaultValue a fresh Registry */
  readonly registry?: Registry;
  /** Clock, for tests of expiry. @defaultValue Date.now */
  readonly now?: () => number;
  /**
   * Serve /metrics, /healthz, /readyz and Bull Board here (main.ts passes
   * `httpListenFor(config, "scheduler")`; port 0 = ephemeral). Absent ⇒ no HTTP server: code that
   * embeds several schedulers in one process (tests, benchmarks) must not grab fixed ports.
   */
  readonly http?: { readonly host: string; readonly port: number; readonly portKey?: string };
  /** This process's name in the ingress stream's consumer group. @defaultValue `<hostname>-<pid>-<6 hex>` */
  readonly instanceId?: string;
}

export interface Scheduler {
  readonly store: SessionStore;
  readonly pairs: PairScheduler;
  /** Each shard's keepalive queue (index = shard; one unless `keepalive.shards` > 1). */
  readonly keepaliveQueues: readonly Queue[];
  readonly registry: Registry;
  readonly events: TypedEmitter<RegistrationEventMap>;
  /** Ends sessions whose TTL or max lifetime passed (every `sessions.reap_interval`). */
  readonly reaper: SessionReaper;
  /** Brings pairs and job schedulers back in step (every `sessions.reconcile_interval`). */
  readonly reconciler: Reconciler;
  /** The ops HTTP server once started (when `http` was given): its bound port and URL. */
  readonly http: OpsHttpServer | undefined;
  /** This process's name in the ingress stream's consumer group. */
  readonly instanceId: string;
  /** What /readyz answers: Redis answers PING and the registration consumers (queue and stream) run. */
  readiness(): Promise<Readiness>;
  start(): Promise<void>;
  /** Stops consuming, waits for in-flight messages, closes connections. Idempotent. */
  stop(): Promise<void>;
}

/** Wires a scheduler process: registration consumer, job-scheduler upserts, state store, session reaper. */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { config, logger } = options;
  const target = requireRedisTarget(config);
  const log = logger.child({ component: "scheduler" });
  const now = options.now ?? Date.now;
  const registry = options.registry ?? new Registry();

  // Bull Board can retry and delete jobs: never serve it unauthenticated beyond this machine.
  const adminPassword = config.admin.password;
  if (options.http && adminPassword === undefined && !isLoopbackHost(options.http.host)) {
    throw new UsageError(
      `admin.password: required when http.host (${options.http.host}) is not a loopback address — Bull Board at ${BULL_BOARD_PATH} must not be served without authentication (set admin.password, e.g. "\${BULL_BOARD_PASSWORD}", or ADMIN_PASSWORD)`,
    );
  }
  const health = createRedisHealth(log);
  const consumerRedis = createRedis(target, "consumer", `vmk-scheduler-consumer@${config.redis.prefix}`);
  const clientRedis = createRedis(target, "client", `vmk-scheduler-client@${config.redis.prefix}`);
  health.watch(consumerRedis, MAIN_REDIS);
  health.watch(clientRedis, MAIN_REDIS);
  const keys = keysOf(config);
  const instanceId = options.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  // XREADGROUP BLOCK holds its connection: one of its own.
  const streamRedis = createRedis(target, "consumer", `vmk-scheduler-stream@${config.redis.prefix}`);
  health.watch(streamRedis, MAIN_REDIS);
  const openQueue = (where: QueueLocation): Queue => {
    const queue = new Queue(where.name, queueOptions(clientRedis, where));
    queue.on("error", (err) => health.report(MAIN_REDIS, err));
    return queue;
  };
  const store = createSessionStore(clientRedis, keys);
  // The per-session mutex (registration consumer and reaper) on the project's one lock primitive.
  const locker = createLocker([clientRedis]);
  const keepaliveQueues = Array.from({ length: keys.shards }, (_, shard) => openQueue(keys.keepaliveQueue(shard)));
  const pairs = createPairScheduler(keepaliveQueues, keys.shardOf);
  const events = new TypedEmitter<RegistrationEventMap>((event, err) => log.error({ err, event }, "event listener failed"));
  createSchedulerMetrics(registry, events);
  const reconciler = createReconciler({
    config,
    redis: clientRedis,
    keys,
    keepaliveQueues,
    scheduler: pairs,
    locker,
    events,
    log: log.child({ component: "reconciler" }),
    intervalMs: config.sessions.reconcileIntervalMs,
  });
  const reaper = createSessionReaper({
    store,
    scheduler: pairs,
    locker,
    log: log.child({ component: "reaper" }),
    now,
    intervalMs: config.sessions.reapIntervalMs,
  });

  // Producers of the other two queues, for Bull Board and the queue-depth gauges only.
  const sessionsQueue = openQueue(keys.sessionsQueue);
  const eventsQueue = openQueue(keys.eventsQueue);
  const allQueues = [sessionsQueue, ...keepaliveQueues, eventsQueue];
  createSchedulerOpsMetrics({ registry, queues: allQueues, keepaliveQueues, redis: clientRedis, keys, backendIds: config.backends.map((b) => b.id), streamGroup: STREAM_SCHEDULER_GROUP });
  const streamConsumer: StreamConsumer = createStreamConsumer({
    config,
    store,
    scheduler: pairs,
    log,
    now,
    locker,
    events,
    redis: clientRedis,
    blocking: streamRedis,
    consumer: instanceId,
    stream: keys.sessionMessagesStream,
    rejectedStream: keys.sessionMessagesRejectedStream,
    concurrency: config.registration.concurrency,
    claimIdleMs: config.streams.claimIdleMs,
    maxDeliveries: config.streams.maxDeliveries,
    rejectedMaxLen: config.streams.rejectedMaxLen,
    onRedisError: (err) => health.report(MAIN_REDIS, err),
  });

  let consumer: Worker | undefined;
  let stopping: Promise<void> | undefined;
  let http: OpsHttpServer | undefined;

  const readiness = async (): Promise<Readiness> => {
    const checks = {
      redis: await redisAnswers(clientRedis),
      consumer: consumer !== undefined && stopping === undefined && consumer.isRunning() && consumerRedis.status === "ready",
      stream: stopping === undefined && streamConsumer.isRunning(),
    };
    const causes = health.causes();
    return { ready: checks.redis && checks.consumer && checks.stream, checks, ...(Object.keys(causes).length > 0 ? { causes } : {}) };
  };

  // Creating the group needs Redis: while it is away, the scheduler starts anyway and keeps trying.
  let streamRetry: NodeJS.Timeout | undefined;
  const startStreamConsumer = async (): Promise<void> => {
    try {
      await streamConsumer.start();
    } catch (err) {
      health.report(MAIN_REDIS, err);
      if (stopping === undefined) streamRetry = setTimeout(() => void startStreamConsumer(), 2_000);
    }
  };

  return {
    store,
    pairs,
    keepaliveQueues,
    registry,
    events,
    reaper,
    reconciler,
    get http() {
      return http;
    },
    instanceId,
    readiness,
    async start() {
      // HTTP first: while Redis cannot be reached (down, TLS or credentials refused), /readyz
      // already answers, with the cause, and /metrics is scraped.
      if (options.http) {
        const auth = adminPassword === undefined ? undefined : { username: config.admin.username, password: adminPassword };
        http = await startOpsHttpServer({ ...options.http, registry, readiness, log, mounts: [createBullBoardMount(allQueues, auth, options.http.host)] });
        if (!auth) log.warn({ host: options.http.host }, "Bull Board is served WITHOUT authentication (loopback only); set admin.password to protect it");
        log.info({ url: http.url, port: http.port, host: options.http.host, bullBoard: `${http.url}${BULL_BOARD_PATH}`, auth: auth !== undefined }, "http server listening");
      }
      consumer = createRegistrationConsumer({
        config,
        store,
        scheduler: pairs,
        log,
        now,
        connection: consumerRedis,
        queue: keys.sessionsQueue,
        locker,
        events,
        onRedisError: (err) => health.report(MAIN_REDIS, err),
      });
      void consumer.run().catch((err: unknown) => log.error({ err }, "registration consumer stopped"));
      await consumer.waitUntilReady();
      // The consumer waited for its own connection; state writes and /readyz use this one.
      if (!(await whenReady(clientRedis, 5_000))) log.warn("Redis is not reachable yet; the scheduler keeps retrying and /readyz says so");
      await startStreamConsumer();
      reaper.start();
      reconciler.start();
      log.info(
        {
          redis: describeRedisTarget(target),
          prefix: config.redis.prefix,
          shards: keys.shards,
          instanceId,
          reapIntervalMs: config.sessions.reapIntervalMs,
          reconcileIntervalMs: config.sessions.reconcileIntervalMs,
          backends: config.backends.map((b) => b.id),
        },
        "scheduler started",
      );
    },
    stop() {
      stopping ??= (async () => {
        // Reverse order of start: the reconciler and the reaper, stop taking messages (readiness turns false at
        // once), the HTTP server, then producers, then connections.
        try {
          await closeInOrder([
            () => reconciler.stop(),
            () => reaper.stop(),
            async () => clearTimeout(streamRetry),
            watchedStep(log, "ingress stream consumer", () => streamConsumer.stop(), { giveUpAfterMs: 10_000 }),
            consumer && watchedStep(log, "registration consumer", () => consumer!.close(), { giveUpAfterMs: 10_000 }),
            http && (() => http!.close()),
            watchedStep(log, "queues", () => Promise.all(allQueues.map((q) => q.close())), { giveUpAfterMs: 5_000 }),
            ...[clientRedis, consumerRedis].map((r) => () => closeRedis(r)),
          ]);
        } finally {
          log.info("scheduler stopped");
        }
      })();
      return stopping;
    },
  };
}
