import { z } from "zod";
import { parseDuration } from "../duration.js";
import { createCredentialKeyRing, IdSchema, keyLayout, MAX_SHARDS } from "@vmcp-keepalive/shared";

/**
 * The longest delay Node's timers take (2^31 − 1 ms, about 24.8 days): a longer one fires at once,
 * so a key that drives a timer above it would turn into a busy loop.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A duration key: `300s`, `5m`, `1h`, `250ms`, or a bare number of milliseconds. Every key that
 * drives a timer is at most {@link MAX_TIMER_MS}; pass `max: Infinity` for one that does not.
 */
function duration(min: number, what = "duration", max = MAX_TIMER_MS) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not a ${what} (use e.g. 300s, 5m, 1h, 250ms)` });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is below the minimum of ${min} ms` });
      return z.NEVER;
    }
    if (ms > max) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is above the maximum of ${max} ms (about 24.8 days, the longest timer Node runs)` });
      return z.NEVER;
    }
    return ms;
  });
}

const redisUrl = z.string().refine((u) => /^rediss?:\/\/.+/.test(u), { message: "must be a redis:// or rediss:// URL" });

/** A PEM file named by the config (read when the program connects: `redisTargetOf`). */
const pemFile = z.string().min(1, "must be a file path");

/**
 * TLS to Redis with your own CA or client certificates. Set, TLS is on for every connection it
 * applies to, whatever the URL's scheme; unset, a `rediss://` URL uses the system trust store.
 */
const TlsSchema = z
  .strictObject({
    /** PEM file of the CA (or bundle) that signed the servers' certificates. Absent ⇒ the system trust store. */
    ca_file: pemFile.optional(),
    /** PEM file of the client certificate, for servers that require one (`tls-auth-clients yes`); with `key_file`. */
    cert_file: pemFile.optional(),
    /** PEM file of the client certificate's private key; with `cert_file`. */
    key_file: pemFile.optional(),
    /** The name the servers' certificates must carry. Absent ⇒ the host connected to. */
    servername: z
      .string()
      .regex(/^[A-Za-z0-9.-]{1,253}$/, "must be a host name")
      .optional(),
  })
  .superRefine((t, ctx) => {
    if ((t.cert_file === undefined) !== (t.key_file === undefined)) {
      ctx.addIssue({ code: "custom", path: [t.cert_file === undefined ? "cert_file" : "key_file"], message: "cert_file and key_file go together (the client certificate and its key)" });
    }
  })
  .transform((t) => ({ caFile: t.ca_file, certFile: t.cert_file, keyFile: t.key_file, servername: t.servername }));

const KEEPALIVE_METHOD_RE = /^(ping|none|tool:[A-Za-z0-9._/-]{1,128})$/;

export const BackendSchema = z
  .strictObject({
    id: IdSchema,
    url: z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), {
      message: "must be an http:// or https:// URL",
    }),
    /** Stateless backends (`false`) get no keepalive unless `keepalive_method` is set. */
    stateful: z.boolean().default(true),
    /** The backend's idle session TTL, when known. */
    session_ttl: duration(1_000, "duration", Number.POSITIVE_INFINITY).optional(),
    /** `ping` | `tool:<name>` | `none`. Absent ⇒ `ping`, subject to the stateless/TTL rules. */
    keepalive_method: z.string().regex(KEEPALIVE_METHOD_RE, "must be ping, none, or tool:<name>").optional(),
    /** Arguments of the tool call. */
    keepalive_tool_args: z.record(z.string(), z.unknown()).default({}),
    /** Call the tool on every tick instead of ping (backends whose idle timer only tools reset). */
    keepalive_tool_every_tick: z.boolean().default(false),
    /** Per-backend interval; overrides `keepalive.interval`. */
    interval: duration(1_000).optional(),
    /** Extra HTTP headers (credentials via `${ENV}`); never logged, never stored in Redis. */
    headers: z.record(z.string(), z.string()).default({}),
    /**
     * `static`: every call carries `headers` (the gateway's own credentials). `session`: each
     * pair's calls also carry the credentials its vMCP supplied for that session (sealed with
     * `credentials.keys`); a pair without them is off (`no_credentials`), and a 401/403 stops that
     * pair only, not the backend.
     */
    auth: z.enum(["static", "session"]).default("static"),
  })
  .superRefine((b, ctx) => {
    if (b.keepalive_tool_every_tick && !b.keepalive_method?.startsWith("tool:")) {
      ctx.addIssue({
        code: "custom",
        path: ["keepalive_tool_every_tick"],
        message: "needs keepalive_method: tool:<name>",
      });
    }
  });

/**
 * The config file as written in YAML (snake_case keys), validated.
 *
 * Every default is written once, in the `.default()` / `.prefault()` of its own key, beside the
 * rule that validates it: one place to read a key whole, and the one place docs/configuration.md
 * is checked against (test/configuration-doc.test.ts). A separate DEFAULTS object would put each
 * value away from its rule and still need each section to repeat it. Sections use `.prefault({})`:
 * an absent section is parsed as `{}`, so its keys' own defaults apply (a `.default()` would return
 * its value unparsed, which is why it needed the whole section written out again). Durations use
 * `.prefault("5m")`: the default is written as the file would write it and parsed like it.
 */
export const ConfigFileSchema = z
  .strictObject({
    redis: z
      .strictObject({
        /**
         * `standalone`: one node at `url`; `sentinel`: the master `sentinel_name` of `sentinels`;
         * `cluster`: a Redis Cluster through the seed `nodes`.
         */
        mode: z.enum(["standalone", "sentinel", "cluster"]).default("standalone"),
        /**
         * Standalone: the node. Sentinel: optional, for the data nodes' credentials, db and TLS
         * (its host is not used). Absent in standalone mode ⇒ the dev command starts an embedded redis-server.
         */
        url: redisUrl.optional(),
        /** Cluster mode: seed nodes (redis:// or rediss:// URLs, credentials in the URL). */
        nodes: z.array(redisUrl).optional(),
        /** Sentinel mode: the Sentinels, `host:port`. */
        sentinels: z.array(z.string().regex(/^[A-Za-z0-9._-]+:\d{1,5}$/, "must be host:port")).optional(),
        /** Sentinel mode: the master's name in the Sentinels' configuration. */
        sentinel_name: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,128}$/, "must be 1-128 characters of A-Z a-z 0-9 . _ -")
          .optional(),
        /** Sentinel mode: the Sentinels' own ACL user. Absent ⇒ the default user. */
        sentinel_username: z.string().min(1).optional(),
        /** Sentinel mode: the Sentinels' own password (`requirepass` in sentinel.conf). Absent ⇒ the data nodes' password from `url`. */
        sentinel_password: z.string().min(1).optional(),
        /** TLS for every connection to the main Redis: the node, the Sentinels and the data nodes they name, every Cluster node. */
        tls: TlsSchema.optional(),
        /** Key prefix of every key and queue. No `{ }` where the layout hash-tags keys (cluster mode, keepalive.shards > 1). */
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9{}_.-]{1,64}$/, "must be 1-64 characters of A-Z a-z 0-9 { } _ . -")
          .default("vmk"),
      })
      .prefault({}),
    lock: z
      .strictObject({
        /** Independent Redis nodes for the Redlock quorum. Empty ⇒ the main Redis. */
        redis_urls: z.array(redisUrl).default([]),
        /** TLS to the lock nodes (the keys of `redis.tls`). Absent ⇒ `redis.tls`. */
        tls: TlsSchema.optional(),
        /**
         * TTL of the pair lock a worker takes for one keepalive tick. Absent ⇒ the calls a tick may
         * make × `keepalive.timeout` + 1 s, so the lock outlives the tick: one call (`timeout` + 1 s),
         * or two for a `tool:<name>` backend that may fall back, ping then the tool (2 × `timeout`
         * + 1 s). The worker computes it (`lockTtlMs` in its tick). Shorter than that lets a slow call
         * outlive its lock; epoch fencing keeps pair state correct even then (a late outcome is not
         * recorded).
         */
        ttl: duration(100).optional(),
      })
      .prefault({}),
    sessions: z
      .strictObject({
        /** How often each scheduler reaps sessions whose sliding TTL or max lifetime has passed. */
        reap_interval: duration(100).prefault("30s"),
        /**
         * How often each scheduler reconciles pairs and job schedulers (both ways): what a crash
         * between two steps, a failover or a restore left out of step is repaired within this.
         */
        reconcile_interval: duration(100).prefault("60s"),
      })
      .prefault({}),
    keepalive: z
      .strictObject({
        /** Time between two keepalives of one pair. */
        interval: duration(1_000).prefault("5m"),
        /** Timeout of one backend call; must be shorter than `interval`. */
        timeout: duration(100).prefault("10s"),
        /** Keepalive jobs one worker runs at once, split evenly over the shards. */
        concurrency: z.number().int().min(1).max(10_000).default(50),
        /**
         * Keepalive queues; a pair goes to one by the hash of its session id. Each shard's queue
         * and pair state share one Redis Cluster hash slot.
         * @defaultValue 16 in cluster mode, else 1
         */
        shards: z.number().int().min(1).max(MAX_SHARDS).optional(),
        /**
         * Most bytes read of one backend answer: a keepalive answer is tiny, and a backend (or a
         * proxy) that sends more must not grow the worker's memory; the call is cut and counts as
         * `protocol_error`.
         */
        max_response_bytes: z
          .number()
          .int()
          .min(1_024)
          .max(64 * 1024 * 1024)
          .default(65_536),
        /**
         * Ticks that come due while no worker takes them (an outage): `spread` over the next
         * interval (docs/keepalive-policy.md, "After an outage"), or `at_once` when workers are back.
         */
        catch_up: z.enum(["spread", "at_once"]).default("spread"),
      })
      .prefault({}),
    breaker: z
      .strictObject({
        /** Consecutive backend failures (all sessions, all workers) that open the breaker. */
        failure_threshold: z.number().int().min(1).max(1_000).default(3),
        /** How long an open breaker waits before its single probe. */
        probe_after: duration(1_000).prefault("30m"),
        /**
         * The consecutive failures that open the breaker must also span at least this long with
         * no success in between: a dead backend still opens it within this time, a blip of a few
         * seconds (thousands of failures under many sessions) never does. 0 = count alone.
         */
        min_failure_span: duration(0).prefault("30s"),
      })
      .prefault({}),
    fallback: z
      .strictObject({
        /** Consecutive ping failures (tool working) before a `tool:<name>` backend switches. */
        after_failures: z.number().int().min(1).max(1_000).default(3),
      })
      .prefault({}),
    registration: z
      .strictObject({
        /** Largest accepted message on `vmcp-sessions`, in bytes of JSON. */
        max_message_bytes: z
          .number()
          .int()
          .min(1_024)
          .max(16 * 1024 * 1024)
          .default(65_536),
        /**
         * Lifecycle messages one scheduler applies at once. Each is a chain of Redis round trips,
         * so more in flight hides their latency (registration rate: docs/benchmarks.md).
         */
        concurrency: z.number().int().min(1).max(1_000).default(64),
      })
      .prefault({}),
    streams: z
      .strictObject({
        /**
         * How long an entry of the ingress stream (`<sessions prefix>:session-messages`) may sit
         * delivered but unacknowledged before another scheduler takes it over (`XAUTOCLAIM`): a
         * killed scheduler's entries are applied by another within this plus one second. Also the
         * wait before an entry that failed for a transient reason (Redis) is tried again.
         */
        claim_idle: duration(1_000).prefault("5s"),
        /**
         * Deliveries after which an ingress entry that keeps failing for a reason other than its
         * content (e.g. a script error) is given up: moved to the rejected stream, acknowledged.
         */
        max_deliveries: z.number().int().min(1).max(1_000).default(5),
        /** Entries kept (about, `MAXLEN ~`) on the rejected stream `<sessions prefix>:session-messages:rejected`. */
        rejected_max_len: z.number().int().min(100).max(10_000_000).default(10_000),
        /**
         * Events kept (about, `MAXLEN ~`) on the event stream `<events prefix>:session-events`, which
         * every event is also added to; 0 = no event stream (the `vmcp-events` queue only).
         */
        events_max_len: z.number().int().min(0).max(100_000_000).default(100_000),
      })
      .prefault({}),
    http: z
      .strictObject({
        /**
         * Interface of the HTTP server (/metrics, /healthz, /readyz, Bull Board). Loopback by
         * default so that nothing is exposed by accident; containers set `0.0.0.0` (env HTTP_HOST).
         */
        host: z.string().min(1).default("127.0.0.1"),
        /** One port for whichever program reads this file (env HTTP_PORT); `0` = ephemeral. Overrides the two below. */
        port: z.number().int().min(0).max(65_535).optional(),
        /** The scheduler's port when `port` is unset. */
        scheduler_port: z.number().int().min(0).max(65_535).default(9464),
        /** The worker's port when `port` is unset: differs from the scheduler's so both run side by side. */
        worker_port: z.number().int().min(0).max(65_535).default(9465),
      })
      .prefault({}),
    admin: z
      .strictObject({
        /** Bull Board basic-auth user. */
        username: z.string().min(1).max(128).default("admin"),
        /** Bull Board basic-auth password (use `${ENV}`). Without it Bull Board is served only on loopback. */
        password: z.string().min(12, "must be at least 12 characters").max(1_024).optional(),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .prefault({}),
    credentials: z
      .strictObject({
        /**
         * The ring that opens session credentials (workers), `[{ id, key }]`: 32 random bytes,
         * base64, from `${ENV}`. Every key opens; the vMCP clients seal with their ring's first key.
         */
        keys: z
          .array(z.strictObject({ id: IdSchema, key: z.string().min(1) }))
          .max(16)
          .default([]),
        /** When set, one `backend.credentials_expiring` event this long before a pair's credentials expire. */
        refresh_before: duration(1_000).optional(),
      })
      .prefault({}),
    backends: z.array(BackendSchema).default([]),
  })
  .superRefine((file, ctx) => {
    if (file.credentials.keys.length > 0) {
      try {
        createCredentialKeyRing(file.credentials.keys);
      } catch (err) {
        // The ring names the key by position and id, never by value.
        ctx.addIssue({ code: "custom", path: ["credentials", "keys"], message: (err as Error).message });
      }
    }
    const seen = new Map<string, number>();
    file.backends.forEach((b, i) => {
      const first = seen.get(b.id);
      if (first !== undefined) {
        ctx.addIssue({ code: "custom", path: ["backends", i, "id"], message: `duplicate backend id ${JSON.stringify(b.id)} (also backends[${first}])` });
      }
      seen.set(b.id, i);
      const interval = b.interval ?? file.keepalive.interval;
      if (b.session_ttl !== undefined && interval >= b.session_ttl && b.keepalive_method !== "none") {
        ctx.addIssue({
          code: "custom",
          path: ["backends", i, b.interval !== undefined ? "interval" : "session_ttl"],
          message: `backend ${JSON.stringify(b.id)}: keepalive interval ${interval} ms must be shorter than its session_ttl ${b.session_ttl} ms, or keepalives arrive after the session expired`,
        });
      }
    });
    const r = file.redis;
    const mode = r.mode;
    const onlyFor = (key: "nodes" | "sentinels" | "sentinel_name" | "sentinel_username" | "sentinel_password", needs: string) => {
      if (r[key] !== undefined && mode !== needs) ctx.addIssue({ code: "custom", path: ["redis", key], message: `only used when redis.mode is ${needs} (it is ${mode})` });
    };
    onlyFor("nodes", "cluster");
    onlyFor("sentinels", "sentinel");
    onlyFor("sentinel_name", "sentinel");
    onlyFor("sentinel_username", "sentinel");
    onlyFor("sentinel_password", "sentinel");
    if (mode === "cluster") {
      if (!r.nodes || r.nodes.length === 0) ctx.addIssue({ code: "custom", path: ["redis", "nodes"], message: "needs at least one seed node when redis.mode is cluster" });
      if (r.url !== undefined) ctx.addIssue({ code: "custom", path: ["redis", "url"], message: "not used when redis.mode is cluster (list the seed nodes in redis.nodes)" });
    }
    if (mode === "sentinel") {
      if (!r.sentinels || r.sentinels.length === 0) ctx.addIssue({ code: "custom", path: ["redis", "sentinels"], message: "needs at least one host:port when redis.mode is sentinel" });
      if (r.sentinel_name === undefined) ctx.addIssue({ code: "custom", path: ["redis", "sentinel_name"], message: "needs the master's name when redis.mode is sentinel" });
    }
    const layout = keyLayout(mode === "cluster", file.keepalive.shards);
    if (layout.tagged && /[{}]/.test(r.prefix)) {
      ctx.addIssue({ code: "custom", path: ["redis", "prefix"], message: "must not contain { } in cluster mode or with keepalive.shards > 1 (the key layout adds its own hash tags)" });
    }
    if (file.keepalive.timeout >= file.keepalive.interval) {
      ctx.addIssue({ code: "custom", path: ["keepalive", "timeout"], message: "must be shorter than keepalive.interval" });
    }
  });

/** The config file after validation: snake_case keys, defaults applied, durations in ms. */
export type ConfigFile = z.output<typeof ConfigFileSchema>;

type FileBackend = ConfigFile["backends"][number];

/**
 * How a backend is kept alive. `tool` pings first and falls back (see docs/contract.md). Each
 * variant goes through `Object.freeze` so that TypeScript infers the plain union: from bare object
 * literals it would add `tool?: never` (and the rest) to the `ping` and `none` variants.
 */
function keepaliveMethodOf(b: FileBackend) {
  const m = b.keepalive_method ?? "ping";
  if (m === "ping") return Object.freeze({ kind: "ping" as const });
  if (m === "none") return Object.freeze({ kind: "none" as const });
  return Object.freeze({
    kind: "tool" as const,
    tool: m.slice("tool:".length),
    args: b.keepalive_tool_args,
    /** Call the tool on every tick; never ping. */
    everyTick: b.keepalive_tool_every_tick,
  });
}

function backendOf(b: FileBackend, file: ConfigFile) {
  return {
    id: b.id,
    url: b.url,
    stateful: b.stateful,
    sessionTtlMs: b.session_ttl,
    method: keepaliveMethodOf(b),
    /** True when the file set `keepalive_method`; an explicit method overrides the stateless/TTL defaults. */
    methodExplicit: b.keepalive_method !== undefined,
    /** Effective interval (the backend's own, else the server's). */
    intervalMs: b.interval ?? file.keepalive.interval,
    headers: { ...b.headers },
    auth: b.auth,
  };
}

/**
 * The file's keys as the programs read them: camelCase, durations named `…Ms`, optional lists
 * resolved to `[]`, the keepalive method parsed, each backend's effective interval and the shard
 * count resolved. Its output type is the source of the `KeepaliveConfig` types (types.ts).
 */
function toKeepaliveConfig(file: ConfigFile) {
  return {
    redis: {
      mode: file.redis.mode,
      /** Standalone: the node; sentinel: credentials/db/TLS of the data nodes (optional). */
      url: file.redis.url,
      nodes: file.redis.nodes ?? [],
      sentinels: file.redis.sentinels ?? [],
      sentinelName: file.redis.sentinel_name,
      sentinelUsername: file.redis.sentinel_username,
      sentinelPassword: file.redis.sentinel_password,
      /** The files `redis.tls` names (read by `redisTargetOf`). */
      tls: file.redis.tls,
      prefix: file.redis.prefix,
    },
    lock: {
      redisUrls: file.lock.redis_urls,
      /** `lock.tls`, else `redis.tls`. */
      tls: file.lock.tls ?? file.redis.tls,
      /** Worker pair-lock TTL; undefined ⇒ computed per tick from `keepalive.timeoutMs` (see `lock.ttl`). */
      ttlMs: file.lock.ttl,
    },
    sessions: { reapIntervalMs: file.sessions.reap_interval, reconcileIntervalMs: file.sessions.reconcile_interval },
    keepalive: {
      intervalMs: file.keepalive.interval,
      timeoutMs: file.keepalive.timeout,
      concurrency: file.keepalive.concurrency,
      maxResponseBytes: file.keepalive.max_response_bytes,
      /** `keepalive.catch_up`: overdue ticks after an outage spread over the next interval, or called at once. */
      catchUp: file.keepalive.catch_up,
      /** Keepalive shards (resolved: 16 in cluster mode, else 1, unless set). */
      shards: keyLayout(file.redis.mode === "cluster", file.keepalive.shards).shards,
    },
    breaker: { failureThreshold: file.breaker.failure_threshold, probeAfterMs: file.breaker.probe_after, minFailureSpanMs: file.breaker.min_failure_span },
    fallback: { afterFailures: file.fallback.after_failures },
    credentials: { keys: file.credentials.keys, refreshBeforeMs: file.credentials.refresh_before },
    registration: { maxMessageBytes: file.registration.max_message_bytes, concurrency: file.registration.concurrency },
    streams: {
      claimIdleMs: file.streams.claim_idle,
      maxDeliveries: file.streams.max_deliveries,
      rejectedMaxLen: file.streams.rejected_max_len,
      /** 0 = no event stream. */
      eventsMaxLen: file.streams.events_max_len,
    },
    http: {
      host: file.http.host,
      /** Set ⇒ both programs use it (HTTP_PORT); else each its own default below. */
      port: file.http.port,
      schedulerPort: file.http.scheduler_port,
      workerPort: file.http.worker_port,
    },
    /** Bull Board credentials; `password` undefined ⇒ no auth, allowed only on a loopback host. */
    admin: { username: file.admin.username, password: file.admin.password },
    log: { level: file.log.level },
    backends: file.backends.map((b) => backendOf(b, file)),
  };
}

/**
 * The file validated and turned into the programs' view of it ({@link toKeepaliveConfig}). The
 * transform runs only on a file that passed every check, so it cannot fail.
 */
export const KeepaliveConfigSchema = ConfigFileSchema.transform(toKeepaliveConfig);
