import { Cluster } from "ioredis";
import { closeInOrder } from "../close-in-order.js";
import { SILENT_LOGGER, type ClientLogger } from "../logger.js";
import { ID_PATTERN } from "../names.js";
import { closeRedis, createRedis, duplicateRedis, type RedisConnection, type RedisTarget, type RedisTls } from "../redis/connection.js";
import { createKeys, keyLayout } from "../redis/keys.js";
import { reinitializePair } from "../state/reinitialize-pair.js";
import { createDebouncedTouch } from "./debounced-touch.js";
import { createEventSubscription, type VmcpEventHandler } from "./event-subscription.js";
import { openClientPairLock } from "./client-pair-lock.js";
import { createPublishGuard, type PublishResult } from "./publish-guard.js";
import { createReinitializeBackend, type ReinitializedBackend, type ReinitializeResult } from "./reinitialize-backend.js";
import { createSessionPublisher, type SessionTransport } from "./session-publisher.js";
import { createCredentialSealer, type SessionOptions } from "./session-credentials.js";
import type { CredentialKey, SessionCredentials } from "../credentials/credential-key-ring.js";
import { createSoftStateRefresh } from "./soft-state-refresh.js";

export type { PublishResult } from "./publish-guard.js";
export type { ReinitializeLock, ReinitializeResult, ReinitializeState, ReinitializedBackend } from "./reinitialize-backend.js";
export type { VmcpEventHandler } from "./event-subscription.js";
export type { SessionBackend, SessionOptions } from "./session-credentials.js";

/*
 * The vMCP client: set-up and wiring only. Each job is a piece of its own — debounced touches,
 * soft-state refreshes, the vmcp-events subscription, re-initialize under the pair lock — started
 * here in order and closed in reverse.
 */

export interface VmcpClientOptions {
  /** URL of the main Redis (the one schedulers and workers use), standalone. Give this, `redis` or `connection`. */
  readonly redisUrl?: string;
  /**
   * The main Redis as the servers' `redis.mode` sees it: standalone (`url`), Sentinel
   * (`sentinels`, `name`) or Cluster (`nodes`). Give this, `redisUrl` or `connection`.
   */
  readonly redis?: RedisTarget;
  /**
   * TLS to Redis with a private CA or client certificates (the servers' `redis.tls`, as PEM
   * contents): for the main Redis (every Sentinel and Cluster node too) and the lock nodes. Given,
   * TLS is on whatever the URL's scheme; absent, a `rediss://` URL uses the system trust store.
   */
  readonly tls?: RedisTls;
  /**
   * Keepalive shards; must equal the servers' `keepalive.shards` (it decides where a pair's lock
   * lives). @defaultValue 16 on a Redis Cluster, else 1
   */
  readonly shards?: number;
  /**
   * An existing ioredis connection to the main Redis, owned by the caller (not closed by
   * `close()`). The client copies it twice: for the event subscription (BullMQ consumers need a
   * blocking connection with `maxRetriesPerRequest: null`) and for the pair lock (which fails
   * fast: no offline queue, no retries).
   */
  readonly connection?: RedisConnection;
  /** Key prefix; must equal the servers' `redis.prefix`. @defaultValue "vmk" */
  readonly prefix?: string;
  /** This vMCP replica's id (`[A-Za-z0-9][A-Za-z0-9._-]{0,127}`), recorded with each registration. */
  readonly replicaId: string;
  /**
   * Independent Redis nodes of the Redlock quorum; must equal the workers' `lock.redis_urls`.
   * The client opens its own connection to each (and one to the main Redis for the lock when
   * this is empty), without an offline queue and with `maxRetriesPerRequest: 0`: a node that is
   * down votes against at once instead of holding `reinitializeBackend` up.
   * @defaultValue [] ⇒ the main Redis
   */
  readonly lockRedisUrls?: readonly string[];
  /**
   * How long `reinitializeBackend` waits for the pair lock: while someone else holds it, or while
   * its Redis is still making its first connection (a lock Redis that is down is not waited for).
   * A worker holds it for one tick at most (its lock TTL, see `lock.ttl` in docs/configuration.md: up to two
   * calls on a fallback backend), so set this just above the workers' longest lock TTL: longer
   * never helps, shorter makes a re-initialize proceed without the lock while a keepalive is
   * legitimately in flight.
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
  /**
   * How lifecycle messages reach the schedulers: `queue`, BullMQ jobs on `vmcp-sessions`; or
   * `stream`, plain `XADD`s to the ingress stream `<sessions prefix>:session-messages` (fewer
   * Redis commands per message; see docs/contract.md, "Redis Streams"). The schedulers read both.
   * @defaultValue "queue"
   */
  readonly transport?: SessionTransport;
  /**
   * The credential key ring, the workers' `credentials.keys`: the first key seals the session
   * credentials this client sends (every key of the workers' ring opens). Needed only to send
   * credentials for `auth: session` backends. Rotation: docs/operations.md, "Rotating the
   * credentials key".
   */
  readonly credentialKeys?: readonly CredentialKey[];
  /** BullMQ concurrency of the `vmcp-events` subscription. @defaultValue 8 */
  readonly eventConcurrency?: number;
  /** Where the client logs keepalive problems (it never throws them). @defaultValue silent */
  readonly logger?: ClientLogger;
  /** Clock (ms). @defaultValue Date.now */
  readonly now?: () => number;
}

/** The surface one vMCP replica uses. Nothing here throws a keepalive problem at the vMCP. */
export interface VmcpClient {
  /**
   * Publishes `session.registered` (also to change the session's backends or TTLs later). A
   * backend's `credentials` are sealed with `credentialKeys` before they leave this process;
   * throws when credentials are given without `credentialKeys` or their headers are not valid.
   */
  registerSession(sessionId: string, options: SessionOptions): Promise<PublishResult>;
  /**
   * Reports activity. Debounced per session: the first touch is sent at once, later ones within
   * `touchIntervalMs` collapse into one trailing message at the end of the interval, so a busy
   * session costs at most one message per interval and its last activity is never lost. Never
   * throws and never waits for Redis.
   *
   * `backendIds`: the backends this activity called. Their pairs carried real traffic, which
   * kept those backend sessions alive: the keepalive worker skips their next tick
   * (`recent_traffic`) instead of calling the backend. Only backends the session registered.
   *
   * `credentials`: the credentials this activity used, by backend (`auth: session` backends):
   * the latest per backend travels with the (debounced) touch and with every later refresh, so
   * the workers' copy refreshes with the user's traffic. Throws as `registerSession` does.
   */
  touch(sessionId: string, options?: { readonly backendIds?: readonly string[]; readonly credentials?: Readonly<Record<string, SessionCredentials>> }): void;
  /**
   * Publishes `session.credentials_updated`: new credentials for one pair without traffic (a
   * token refreshed ahead of its expiry, or after `backend.credentials_expiring`,
   * `backend.credentials_expired` or `backend.unauthorized`). Throws as `registerSession` does.
   */
  updateCredentials(sessionId: string, backendId: string, credentials: SessionCredentials): Promise<PublishResult>;
  /** Publishes `session.ended` (drops any pending trailing touch). */
  endSession(sessionId: string, reason?: string): Promise<PublishResult>;
  /**
   * Subscribes to `vmcp-events`. The subscription is one BullMQ Worker shared by all handlers
   * of this client; BullMQ delivers each event to ONE replica (whichever consumer takes the
   * job), not to every replica. A handler must therefore act on shared session state — e.g.
   * mark the backend for re-initialize in the vMCP's own session store — rather than on state
   * only the replica that owns the session holds. A handler that throws fails the job and
   * BullMQ retries it (3 attempts, possibly on another replica). Fields this client does not know
   * are left out and events of a type it does not know are skipped, quietly (a newer worker's:
   * docs/contract.md, "Evolution"); an event of a known type that does not match its schema is
   * logged and dropped. Returns a function that removes the handler.
   */
  onEvent(handler: VmcpEventHandler): () => void;
  /**
   * Re-initializes one backend of a session under the pair lock, so it can never race with
   * a keepalive: waits up to `lockTimeoutMs` for the lock (not at all while the lock's Redis is
   * down: the result then says `lock: "unavailable"`), runs `fn` (the vMCP's own re-initialize,
   * returning the new backend session), stores the new backend session id and protocol version
   * and bumps the pair epoch in one atomic script, then releases. Errors thrown by `fn` are the
   * vMCP's own and are re-thrown (after the lock is released); keepalive problems (lock, Redis)
   * are reported in the result, never thrown.
   */
  reinitializeBackend<R extends ReinitializedBackend>(sessionId: string, backendId: string, fn: () => Promise<R>): Promise<ReinitializeResult<R>>;
  /** Sends pending trailing touches, stops the subscription, closes what the client opened. */
  close(): Promise<void>;
}

export function createVmcpClient(options: VmcpClientOptions): VmcpClient {
  if (!ID_PATTERN.test(options.replicaId)) throw new Error(`replicaId ${JSON.stringify(options.replicaId)} is not a valid id`);
  const given: RedisTarget | undefined = options.redis ?? (options.redisUrl ? { mode: "standalone", url: options.redisUrl } : undefined);
  const target: RedisTarget | undefined = given && options.tls ? { ...given, tls: options.tls } : given;
  if (!options.connection && !target) throw new Error("createVmcpClient needs redisUrl, redis or connection");
  if (target?.mode === "cluster" && target.nodes.length === 0) throw new Error("createVmcpClient: redis.nodes needs at least one seed node in cluster mode");
  if (target?.mode === "sentinel" && (target.sentinels.length === 0 || !target.name)) throw new Error("createVmcpClient: redis.sentinels and redis.name are needed in sentinel mode");
  if (options.transport !== undefined && options.transport !== "queue" && options.transport !== "stream") {
    throw new Error(`createVmcpClient: transport must be "queue" or "stream", got ${JSON.stringify(options.transport)}`);
  }
  const prefix = options.prefix ?? "vmk";
  const now = options.now ?? Date.now;
  const log = (options.logger ?? SILENT_LOGGER).child({ component: "vmcp-client", replicaId: options.replicaId });
  const lockTimeoutMs = options.lockTimeoutMs ?? 22_000;
  const touchIntervalMs = options.touchIntervalMs ?? 30_000;

  // The key layout first: a bad shard count throws here, before any connection is opened.
  const cluster = target ? target.mode === "cluster" : options.connection instanceof Cluster;
  const keys = createKeys(prefix, keyLayout(cluster, options.shards));

  const owned = options.connection ? undefined : createRedis(target!, "client", `vmk-vmcp-client@${prefix}`);
  const connection = options.connection ?? owned!;
  const pairLock = openClientPairLock({
    main: options.connection ? { connection: options.connection } : { target: target! },
    lockRedisUrls: options.lockRedisUrls ?? [],
    lockTls: options.tls,
    prefix,
    connectWaitMs: lockTimeoutMs,
  });
  const publisher = createSessionPublisher({ connection, queue: keys.sessionsQueue, replicaId: options.replicaId, now, transport: options.transport ?? "queue" });
  const guard = createPublishGuard(log);
  const sealer = createCredentialSealer(options.credentialKeys);

  const touches = createDebouncedTouch<SessionCredentials>({
    send: (sessionId, activity) =>
      guard.run("session.touched", sessionId, () => publisher.touch(sessionId, { at: activity.at, backendIds: activity.backendIds, credentials: sealer.byBackend(sessionId, activity.credentials) })),
    intervalMs: touchIntervalMs,
    now,
  });
  const refresh = createSoftStateRefresh({
    send: (sessionId, o) => guard.run("session.registered (refresh)", sessionId, async () => publisher.register(sessionId, sealer.registration(sessionId, o))),
    intervalFor: (o) => options.refreshIntervalMs ?? Math.min(Math.round(o.sessionTtlMs / 3), 600_000),
    onRefresh: (sessionId) => touches.coveredByRegistration(sessionId),
  });
  const events = createEventSubscription({
    connect: () => (options.connection ? duplicateRedis(options.connection, "consumer", `vmk-vmcp-events@${prefix}`) : createRedis(target!, "consumer", `vmk-vmcp-events@${prefix}`)),
    queue: keys.eventsQueue,
    concurrency: options.eventConcurrency ?? 8,
    log,
  });
  const reinitialize = createReinitializeBackend({
    locker: pairLock.locker,
    pairLock: (sessionId, backendId) => keys.pairLock(sessionId, backendId),
    store: (pair) => reinitializePair(pairLock.connection, keys, pair, now()),
    onNewSession: (pair) => refresh.updateBackend(pair.sessionId, pair.backendId, pair),
    requestRestore: (sessionId, backendId) => guard.run("session.backend_reinitialized", sessionId, () => publisher.backendReinitialized(sessionId, backendId)),
    lockTimeoutMs,
    lockTtlMs: options.reinitializeLockTtlMs ?? 30_000,
    log,
  });

  let closing: Promise<void> | undefined;

  return {
    registerSession(sessionId, o) {
      const sealed = sealer.registration(sessionId, o);
      if (!closing) refresh.remember(sessionId, o);
      return guard.run("session.registered", sessionId, () => publisher.register(sessionId, sealed));
    },

    touch(sessionId, o = {}) {
      if (closing) return;
      const credentials = new Map(Object.entries(o.credentials ?? {}));
      // Sealed here once to fail at the caller on bad input; the send seals again with the latest.
      sealer.byBackend(sessionId, credentials);
      for (const [backendId, c] of credentials) refresh.updateCredentials(sessionId, backendId, c);
      touches.touch(sessionId, o.backendIds ?? [], credentials);
    },

    updateCredentials(sessionId, backendId, credentials) {
      const sealed = sealer.seal(sessionId, backendId, credentials);
      refresh.updateCredentials(sessionId, backendId, credentials);
      return guard.run("session.credentials_updated", sessionId, () => publisher.credentialsUpdated(sessionId, backendId, sealed));
    },

    endSession(sessionId, reason) {
      touches.drop(sessionId);
      refresh.forget(sessionId);
      sealer.forget(sessionId);
      return guard.run("session.ended", sessionId, () => publisher.end(sessionId, reason));
    },

    onEvent(handler) {
      return closing ? () => {} : events.add(handler);
    },

    reinitializeBackend: reinitialize,

    close() {
      closing ??= (async () => {
        refresh.stop();
        // The last activity of every session with a pending trailing touch is sent now.
        await touches.flush();
        await guard.idle();
        await closeInOrder([() => events.close(), () => publisher.close(), () => pairLock.close(), owned && (() => closeRedis(owned))]);
      })();
      return closing;
    },
  };
}
