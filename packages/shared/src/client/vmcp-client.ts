import { UnrecoverableError, Worker, type Job } from "bullmq";
import { Cluster } from "ioredis";
import type { RedisConnection } from "../redis/connection.js";
import { closeInOrder } from "../close-in-order.js";
import { createLocker, type Locker, type TryLockResult } from "../lock/locker.js";
import { SILENT_LOGGER, type ClientLogger } from "../logger.js";
import { ID_PATTERN } from "../names.js";
import { closeRedis, createRedis, duplicateRedis, type RedisTarget } from "../redis/connection.js";
import { createKeys, keyLayout } from "../redis/keys.js";
import { reinitializePair } from "../state/reinitialize-pair.js";
import { VmcpEventSchema, type VmcpEvent } from "../events/vmcp-events.js";
import { BackendRegistrationSchema } from "../messages/schema.js";
import { createSessionPublisher, type RegisterOptions, type SessionPublisher } from "./session-publisher.js";

export interface VmcpClientOptions {
  /** URL of the main Redis (the one schedulers and workers use), standalone. Give this, `redis` or `connection`. */
  readonly redisUrl?: string;
  /**
   * The main Redis as the servers' `redis.mode` sees it: standalone (`url`), Sentinel
   * (`sentinels`, `name`) or Cluster (`nodes`). Give this, `redisUrl` or `connection`.
   */
  readonly redis?: RedisTarget;
  /**
   * Keepalive shards; must equal the servers' `keepalive.shards` (it decides where a pair's lock
   * lives). @defaultValue 16 on a Redis Cluster, else 1
   */
  readonly shards?: number;
  /**
   * An existing ioredis connection to the main Redis, owned by the caller (not closed by
   * `close()`). The event subscription duplicates it, because BullMQ consumers need a blocking
   * connection with `maxRetriesPerRequest: null`.
   */
  readonly connection?: RedisConnection;
  /** Key prefix; must equal the servers' `redis.prefix`. @defaultValue "vmk" */
  readonly prefix?: string;
  /** This vMCP replica's id (`[A-Za-z0-9][A-Za-z0-9._-]{0,127}`), recorded with each registration. */
  readonly replicaId: string;
  /**
   * Independent Redis nodes of the Redlock quorum; must equal the workers' `lock.redis_urls`.
   * @defaultValue [] ⇒ the main Redis
   */
  readonly lockRedisUrls?: readonly string[];
  /**
   * How long `reinitializeBackend` waits for the pair lock. A worker holds it for one tick at most
   * (its lock TTL, see `lock.ttl` in the README: up to two calls on a fallback backend), so set
   * this just above the workers' longest lock TTL: longer never helps, shorter makes a
   * re-initialize proceed without the lock while a keepalive is legitimately in flight.
   * @defaultValue 22_000 (the longest default worker lock, a fallback backend's 21 s, + 1 s)
   */
  readonly lockTimeoutMs?: number;
  /**
   * TTL of the pair lock while the re-initialize callback runs. It only matters if this process
   * dies holding the lock (keepalives of that pair pause that long) or if the callback takes
   * longer (the result then says `lock: "expired"`).
   * @defaultValue 30_000
   */
  readonly reinitializeLockTtlMs?: number;
  /** Debounce interval of `touch`: at most one `session.touched` per session per interval. @defaultValue 30_000 */
  readonly touchIntervalMs?: number;
  /**
   * Soft state: every live session this client registered is registered again this often (its
   * current backends, a new sequence; jittered ±10 %), so whatever Redis forgets — a flush, a
   * failover, an old snapshot — comes back within one interval with no operator action. An ended
   * session is never sent again. Cost: 3,600,000 / interval messages per session per hour (at
   * the default for a 30-minute session TTL, 10 minutes: 6). Set it to 0 to turn refreshes off.
   * @defaultValue a third of the session's TTL, at most 10 minutes
   */
  readonly refreshIntervalMs?: number;
  /** BullMQ concurrency of the `vmcp-events` subscription. @defaultValue 8 */
  readonly eventConcurrency?: number;
  /** Where the client logs keepalive problems (it never throws them). @defaultValue silent */
  readonly logger?: ClientLogger;
  /** Clock (ms). @defaultValue Date.now */
  readonly now?: () => number;
}

/** Outcome of publishing one lifecycle message. A failure is logged and returned, never thrown. */
export type PublishResult = { readonly ok: true } | { readonly ok: false; readonly reason: "publish_failed"; readonly error: Error };

/**
 * What happened to the pair lock during a re-initialize:
 * - `held`: taken within `lockTimeoutMs` and still valid when the new state was written;
 * - `expired`: taken, but the callback outlasted `reinitializeLockTtlMs`;
 * - `busy`: someone still held it after `lockTimeoutMs` (another re-initialize of the same pair,
 *   or a worker past its own TTL) — the re-initialize went ahead without it;
 * - `unavailable`: the lock nodes could not form a quorum — went ahead without it.
 */
export type ReinitializeLock = "held" | "expired" | "busy" | "unavailable";

/**
 * What happened to the stored pair:
 * - `written`: new backend session id and protocol version stored, epoch bumped;
 * - `unknown_pair`: no such pair (session never registered with this backend, ended or reaped) —
 *   nothing stored; register the session again (with the new backend session id) to keep it alive;
 * - `write_failed`: Redis refused the write (logged). The pair keeps its old backend session id:
 *   its next keepalive gets 404 and a `backend.session_expired` event names the OLD id, which the
 *   vMCP recognises as not current and ignores or answers with another `reinitializeBackend`;
 * - `invalid_result`: the callback returned no valid backend session id (1-512 visible ASCII) or
 *   protocol version (`YYYY-MM-DD`) — the same rules as `session.registered`; nothing stored.
 */
export type ReinitializeState = "written" | "unknown_pair" | "write_failed" | "invalid_result";

export interface ReinitializeResult<R> {
  /** What the callback returned. */
  readonly value: R;
  readonly lock: ReinitializeLock;
  readonly state: ReinitializeState;
  /** The pair's epoch after the write (when `written`). */
  readonly epoch?: number;
  /** True when the pair had expired and the scheduler was asked to restore its job scheduler. */
  readonly schedulerRestoreRequested: boolean;
}

/** What a re-initialize callback returns: the new backend session. */
export interface ReinitializedBackend {
  readonly backendSessionId: string;
  /** The negotiated MCP revision (sent back as `MCP-Protocol-Version` by keepalives). */
  readonly protocolVersion?: string | undefined;
}

/** Activity a touch reports: when, and which backends it called. */
interface Activity {
  at: number;
  backends: Set<string>;
  /** Time of the first use of a backend added to a pending (trailing) touch. */
  earliestBackendUse: number | undefined;
}

export type VmcpEventHandler = (event: VmcpEvent) => void | Promise<void>;

/** The surface one vMCP replica uses. Nothing here throws a keepalive problem at the vMCP. */
export interface VmcpClient {
  /** Publishes `session.registered` (also to change the session's backends or TTLs later). */
  registerSession(sessionId: string, options: RegisterOptions): Promise<PublishResult>;
  /**
   * Reports activity. Debounced per session: the first touch is sent at once, later ones within
   * `touchIntervalMs` collapse into one trailing message at the end of the interval, so a busy
   * session costs at most one message per interval and its last activity is never lost. Never
   * throws and never waits for Redis.
   *
   * `backendIds`: the backends this activity called. Their pairs carried real traffic, which
   * kept those backend sessions alive: the keepalive worker skips their next tick
   * (`recent_traffic`) instead of calling the backend. Only backends the session registered.
   */
  touch(sessionId: string, options?: { readonly backendIds?: readonly string[] }): void;
  /** Publishes `session.ended` (drops any pending trailing touch). */
  endSession(sessionId: string, reason?: string): Promise<PublishResult>;
  /**
   * Subscribes to `vmcp-events`. The subscription is one BullMQ Worker shared by all handlers
   * of this client; BullMQ delivers each event to ONE replica (whichever consumer takes the
   * job), not to every replica. A handler must therefore act on shared session state — e.g.
   * mark the backend for re-initialize in the vMCP's own session store — rather than on state
   * only the replica that owns the session holds. A handler that throws fails the job and
   * BullMQ retries it (3 attempts, possibly on another replica). Events that do not match the
   * schema are logged and dropped. Returns a function that removes the handler.
   */
  onEvent(handler: VmcpEventHandler): () => void;
  /**
   * Re-initializes one backend of a session under the pair's Redlock, so it can never race with
   * a keepalive: waits up to `lockTimeoutMs` for the lock, runs `fn` (the vMCP's own re-initialize,
   * returning the new backend session), stores the new backend session id and protocol version
   * and bumps the pair epoch in one atomic script, then releases. Errors thrown by `fn` are the
   * vMCP's own and are re-thrown (after the lock is released); keepalive problems (lock, Redis)
   * are reported in the result, never thrown.
   */
  reinitializeBackend<R extends ReinitializedBackend>(sessionId: string, backendId: string, fn: () => Promise<R>): Promise<ReinitializeResult<R>>;
  /** Sends pending trailing touches, stops the subscription, closes what the client opened. */
  close(): Promise<void>;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export function createVmcpClient(options: VmcpClientOptions): VmcpClient {
  if (!ID_PATTERN.test(options.replicaId)) throw new Error(`replicaId ${JSON.stringify(options.replicaId)} is not a valid id`);
  const target: RedisTarget | undefined = options.redis ?? (options.redisUrl ? { mode: "standalone", url: options.redisUrl } : undefined);
  if (!options.connection && !target) throw new Error("createVmcpClient needs redisUrl, redis or connection");
  if (target?.mode === "cluster" && target.nodes.length === 0) throw new Error("createVmcpClient: redis.nodes needs at least one seed node in cluster mode");
  if (target?.mode === "sentinel" && (target.sentinels.length === 0 || !target.name)) throw new Error("createVmcpClient: redis.sentinels and redis.name are needed in sentinel mode");
  const prefix = options.prefix ?? "vmk";
  const now = options.now ?? Date.now;
  const log = (options.logger ?? SILENT_LOGGER).child({ component: "vmcp-client", replicaId: options.replicaId });
  const lockTimeoutMs = options.lockTimeoutMs ?? 22_000;
  const reinitializeLockTtlMs = options.reinitializeLockTtlMs ?? 30_000;
  const touchIntervalMs = options.touchIntervalMs ?? 30_000;
  const refreshIntervalFor = (o: RegisterOptions) => options.refreshIntervalMs ?? Math.min(Math.round(o.sessionTtlMs / 3), 600_000);

  // The key layout first: a bad shard count throws here, before any connection is opened.
  const cluster = target ? target.mode === "cluster" : options.connection instanceof Cluster;
  const keys = createKeys(prefix, keyLayout(cluster, options.shards));
  const owned: RedisConnection[] = [];
  const connection = options.connection ?? createRedis(target!, "client", `vmk-vmcp-client@${prefix}`);
  if (!options.connection) owned.push(connection);
  const lockUrls = options.lockRedisUrls ?? [];
  // Lock nodes fail fast (no offline queue): a down node must vote against at once.
  const lockClients = lockUrls.length > 0 ? lockUrls.map((u, i) => createRedis(u, "client", `vmk-vmcp-lock-${i}@${prefix}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })) : [connection];
  if (lockUrls.length > 0) owned.push(...lockClients);

  const locker: Locker = createLocker(lockClients);
  const publisher: SessionPublisher = createSessionPublisher({ connection, queue: keys.sessionsQueue, replicaId: options.replicaId, now });

  const guard = async (what: string, sessionId: string, send: () => Promise<void>): Promise<PublishResult> => {
    try {
      await send();
      return { ok: true };
    } catch (err) {
      const error = asError(err);
      log.warn({ err: error, sessionId }, `could not publish ${what}; keepalive for this session may lag`);
      return { ok: false, reason: "publish_failed", error };
    }
  };

  // Debounced touches: one entry per session with a touch sent in the current interval, and the
  // activity (time, backends used) the trailing touch will report.
  const touches = new Map<string, { timer: NodeJS.Timeout; pending: Activity | undefined }>();
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  };
  const sendTouch = (sessionId: string, activity: Activity) =>
    track(guard("session.touched", sessionId, () => publisher.touch(sessionId, { at: activity.earliestBackendUse ?? activity.at, backendIds: [...activity.backends] })));
  const arm = (sessionId: string) => {
    const entry: { timer: NodeJS.Timeout; pending: Activity | undefined } = {
      pending: undefined,
      timer: setTimeout(() => {
        touches.delete(sessionId);
        if (!entry.pending) return;
        void sendTouch(sessionId, entry.pending);
        arm(sessionId);
      }, touchIntervalMs),
    };
    entry.timer.unref();
    touches.set(sessionId, entry);
  };
  /** Forgets a session's debounce; returns the activity a trailing touch would have reported. */
  const dropTouch = (sessionId: string): Activity | undefined => {
    const entry = touches.get(sessionId);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    touches.delete(sessionId);
    return entry.pending;
  };

  // Soft state: the registration of every live session, re-sent every refresh interval.
  const live = new Map<string, { options: RegisterOptions; timer: NodeJS.Timeout | undefined }>();
  const armRefresh = (sessionId: string) => {
    const entry = live.get(sessionId);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    const every = refreshIntervalFor(entry.options);
    if (every <= 0) return;
    entry.timer = setTimeout(
      () => {
        const current = live.get(sessionId);
        if (current !== entry || closing) return;
        // A registration slides the session's expiry too: it stands in for a pending touch, unless
        // that touch reports traffic on backends (which a registration does not carry).
        if ((touches.get(sessionId)?.pending?.backends.size ?? 0) === 0) dropTouch(sessionId);
        void track(guard("session.registered (refresh)", sessionId, () => publisher.register(sessionId, entry.options)));
        armRefresh(sessionId);
      },
      Math.round(every * (0.9 + 0.2 * Math.random())),
    );
    entry.timer.unref();
  };
  const forget = (sessionId: string) => {
    const entry = live.get(sessionId);
    if (entry?.timer) clearTimeout(entry.timer);
    live.delete(sessionId);
  };

  // vmcp-events subscription, started with the first handler.
  const handlers = new Set<VmcpEventHandler>();
  let eventWorker: Worker | undefined;
  let eventConnection: RedisConnection | undefined;
  const startEvents = () => {
    const events = options.connection ? duplicateRedis(options.connection, "consumer", `vmk-vmcp-events@${prefix}`) : createRedis(target!, "consumer", `vmk-vmcp-events@${prefix}`);
    eventConnection = events;
    eventWorker = new Worker(
      keys.eventsQueue.name,
      async (job: Job) => {
        const parsed = VmcpEventSchema.safeParse(job.data);
        if (!parsed.success) {
          log.warn(
            {
              jobId: job.id,
              detail: parsed.error.issues
                .slice(0, 3)
                .map((i) => i.message)
                .join("; "),
            },
            "vmcp-events job does not match the schema; dropped",
          );
          throw new UnrecoverableError("invalid vmcp event");
        }
        for (const handler of [...handlers]) await handler(parsed.data);
      },
      { connection: events, prefix: keys.eventsQueue.prefix, concurrency: options.eventConcurrency ?? 8 },
    );
    eventWorker.on("error", (err) => log.warn({ err }, "vmcp-events subscription error"));
    eventWorker.on("failed", (job, err) => log.warn({ jobId: job?.id, err: err.message }, "vmcp-events handler failed"));
  };

  let closing: Promise<void> | undefined;

  return {
    registerSession(sessionId, o) {
      if (!closing) {
        live.set(sessionId, { options: { ...o, backends: o.backends.map((b) => ({ ...b })) }, timer: live.get(sessionId)?.timer });
        armRefresh(sessionId);
      }
      return guard("session.registered", sessionId, () => publisher.register(sessionId, o));
    },

    touch(sessionId, o = {}) {
      if (closing) return;
      const at = now();
      const used = o.backendIds ?? [];
      const entry = touches.get(sessionId);
      if (entry) {
        // Folded into the trailing touch. Its time is the earliest last use among the backends it
        // names (conservative: a backend's traffic is never reported later than it happened).
        const pending = (entry.pending ??= { at, backends: new Set(), earliestBackendUse: undefined });
        pending.at = at;
        for (const b of used) {
          if (!pending.backends.has(b)) pending.earliestBackendUse = Math.min(pending.earliestBackendUse ?? at, at);
          pending.backends.add(b);
        }
        return;
      }
      void sendTouch(sessionId, { at, backends: new Set(used), earliestBackendUse: undefined });
      arm(sessionId);
    },

    endSession(sessionId, reason) {
      dropTouch(sessionId);
      forget(sessionId);
      return guard("session.ended", sessionId, () => publisher.end(sessionId, reason));
    },

    onEvent(handler) {
      handlers.add(handler);
      if (!eventWorker && !closing) startEvents();
      return () => {
        handlers.delete(handler);
      };
    },

    async reinitializeBackend(sessionId, backendId, fn) {
      // Decision (argued): a re-initialize ALWAYS runs `fn` and stores its result, with or without
      // the lock. The vMCP re-initializes because its user is waiting on that backend; refusing
      // or failing here would surface a keepalive problem, which the contract forbids. Waiting
      // longer than lockTimeoutMs cannot help: a worker holds the lock for one call at most
      // (TTL = lock.ttl), so "still busy" means another re-initialize of the same pair, and
      // "unavailable" means the lock nodes lost quorum — then no worker can lock either and no
      // keepalive runs. Going ahead without the lock is safe for state: the write bumps the
      // epoch, so a keepalive that read the old state can neither overwrite the new one nor mark
      // the pair expired (its write is fenced). The one guarantee weakened is "no keepalive
      // reaches the OLD backend session after this returns", only in those two cases; the
      // result says which case happened.
      //
      // Quorum lost is answered at once (no retries): while it lasts no worker can lock either, so
      // waiting up to lockTimeoutMs would only delay the vMCP's user. Contention is waited out.
      let acquired: TryLockResult;
      try {
        const resource = keys.pairLock(sessionId, backendId);
        acquired = await locker.tryLock(resource, reinitializeLockTtlMs);
        if (!acquired.acquired && acquired.reason === "locked") acquired = await locker.lock(resource, reinitializeLockTtlMs, lockTimeoutMs);
      } catch (err) {
        acquired = { acquired: false, reason: "lock_unavailable", error: asError(err) };
      }
      if (!acquired.acquired) {
        log.warn({ sessionId, backendId, reason: acquired.reason, err: acquired.reason === "lock_unavailable" ? acquired.error : undefined }, "pair lock not obtained; re-initializing without it");
      }
      try {
        const value = await fn();
        let lock: ReinitializeLock = acquired.acquired ? "held" : acquired.reason === "locked" ? "busy" : "unavailable";
        if (acquired.acquired && !acquired.lock.isValid()) lock = "expired";
        let state: ReinitializeState;
        let epoch: number | undefined;
        let restore = false;
        const valid = BackendRegistrationSchema.safeParse({ backendId, backendSessionId: value.backendSessionId, protocolVersion: value.protocolVersion });
        if (!valid.success || valid.data.backendSessionId === undefined) {
          log.error({ sessionId, backendId, detail: valid.error?.issues[0]?.message ?? "backendSessionId missing" }, "re-initialize callback returned an invalid backend session; nothing stored");
          return { value, lock, state: "invalid_result", schedulerRestoreRequested: false };
        }
        // Refreshes from now on carry the new backend session (the old one is gone at the backend).
        const entry = live.get(sessionId);
        if (entry) {
          const backends = entry.options.backends.map((b) =>
            b.backendId === backendId ? { ...b, backendSessionId: valid.data.backendSessionId, ...(value.protocolVersion === undefined ? {} : { protocolVersion: value.protocolVersion }) } : b,
          );
          entry.options = { ...entry.options, backends };
        }
        try {
          const stored = await reinitializePair(connection, keys, { sessionId, backendId, backendSessionId: value.backendSessionId, protocolVersion: value.protocolVersion }, now());
          if (stored.status === "applied") {
            state = "written";
            epoch = stored.epoch;
            restore = stored.previousStatus === "expired";
          } else {
            state = "unknown_pair";
            log.info({ sessionId, backendId }, "re-initialized a backend of a session that is not registered (ended or reaped); nothing stored");
          }
        } catch (err) {
          state = "write_failed";
          log.warn({ err: asError(err), sessionId, backendId }, "could not store the re-initialized backend session");
        }
        if (restore) {
          // The worker removed this pair's job scheduler when the old session answered 404; the
          // scheduler (the only place that creates job schedulers) restores it from the state
          // we just stored. Published while we still hold the lock, so no tick sees a gap.
          const published = await guard("session.backend_reinitialized", sessionId, () => publisher.backendReinitialized(sessionId, backendId));
          restore = published.ok;
        }
        return { value, lock, state, ...(epoch === undefined ? {} : { epoch }), schedulerRestoreRequested: restore };
      } finally {
        if (acquired.acquired) await acquired.lock.release();
      }
    },

    close() {
      closing ??= (async () => {
        // The last activity of every session with a pending trailing touch is sent now.
        for (const sessionId of [...live.keys()]) forget(sessionId);
        const pending = [...touches.keys()].flatMap((s) => {
          const activity = dropTouch(s);
          return activity ? [[s, activity] as const] : [];
        });
        await Promise.all(pending.map(([s, activity]) => sendTouch(s, activity)));
        await Promise.all([...inFlight]);
        await closeInOrder([eventWorker && (() => eventWorker!.close()), eventConnection && (() => closeRedis(eventConnection!)), () => publisher.close(), ...owned.map((r) => () => closeRedis(r))]);
      })();
      return closing;
    },
  };
}
