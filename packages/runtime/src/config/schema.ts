import { z } from "zod";
import { parseDuration } from "../duration.js";
import { IdSchema, keyLayout, MAX_SHARDS } from "@vmcp-keepalive/shared";

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

const KEEPALIVE_METHOD_RE = /^(ping|none|tool:[A-Za-z0-9._/-]{1,128})$/;

export const BackendSchema = z
  .strictObject({
    id: IdSchema,
    url: z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), {
      message: "must be an http:// or https:// URL",
    }),
    /** Stateless backends (`false`) get no keepalive unless `keepalive_method` is set. @defaultValue true */
    stateful: z.boolean().default(true),
    /** The backend's idle session TTL, when known. */
    session_ttl: duration(1_000, "duration", Number.POSITIVE_INFINITY).optional(),
    /** `ping` | `tool:<name>` | `none`. Absent ⇒ `ping`, subject to the stateless/TTL rules. */
    keepalive_method: z.string().regex(KEEPALIVE_METHOD_RE, "must be ping, none, or tool:<name>").optional(),
    /** Arguments of the fallback tool call. @defaultValue {} */
    keepalive_tool_args: z.record(z.string(), z.unknown()).default({}),
    /** Call the tool on every tick instead of ping (backends whose idle timer only tools reset). */
    keepalive_tool_every_tick: z.boolean().default(false),
    /** Per-backend interval; overrides `keepalive.interval`. */
    interval: duration(1_000).optional(),
    /** Extra HTTP headers (credentials via `${ENV}`); never logged, never stored in Redis. */
    headers: z.record(z.string(), z.string()).default({}),
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

export const ConfigFileSchema = z
  .strictObject({
    redis: z
      .strictObject({
        /**
         * `standalone`: one node at `url`; `sentinel`: the master `sentinel_name` of `sentinels`;
         * `cluster`: a Redis Cluster through the seed `nodes`.
         * @defaultValue "standalone"
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
        /** Key prefix of every key and queue. No `{ }` where the layout hash-tags keys (cluster mode, keepalive.shards > 1). */
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9{}_.-]{1,64}$/, "must be 1-64 characters of A-Z a-z 0-9 { } _ . -")
          .default("vmk"),
      })
      .default({ mode: "standalone", prefix: "vmk" }),
    lock: z
      .strictObject({
        /** Independent Redis nodes for the Redlock quorum. Empty ⇒ the main Redis. */
        redis_urls: z.array(redisUrl).default([]),
        /**
         * TTL of the pair lock a worker takes for one keepalive. Absent ⇒ `keepalive.timeout` + 1 s,
         * so the lock outlives the call. Shorter than the timeout lets a slow call outlive its lock;
         * epoch fencing keeps pair state correct even then (a late outcome is not recorded).
         */
        ttl: duration(100).optional(),
      })
      .default({ redis_urls: [] }),
    sessions: z
      .strictObject({
        /** How often each scheduler reaps sessions whose sliding TTL or max lifetime has passed. */
        reap_interval: duration(100).default(30_000),
        /**
         * How often each scheduler reconciles pairs and job schedulers (both ways): what a crash
         * between two steps, a failover or a restore left out of step is repaired within this.
         */
        reconcile_interval: duration(100).default(60_000),
      })
      .default({ reap_interval: 30_000, reconcile_interval: 60_000 }),
    keepalive: z
      .strictObject({
        interval: duration(1_000).default(300_000),
        timeout: duration(100).default(10_000),
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
         * @defaultValue 65_536
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
         * @defaultValue "spread"
         */
        catch_up: z.enum(["spread", "at_once"]).default("spread"),
      })
      .default({ interval: 300_000, timeout: 10_000, concurrency: 50, max_response_bytes: 65_536, catch_up: "spread" }),
    breaker: z
      .strictObject({
        /** Consecutive backend failures (all sessions, all workers) that open the breaker. */
        failure_threshold: z.number().int().min(1).max(1_000).default(3),
        /** How long an open breaker waits before its single probe. */
        probe_after: duration(1_000).default(1_800_000),
        /**
         * The consecutive failures that open the breaker must also span at least this long with
         * no success in between: a dead backend still opens it within this time, a blip of a few
         * seconds (thousands of failures under many sessions) never does. 0 = count alone.
         * @defaultValue 30_000
         */
        min_failure_span: duration(0).default(30_000),
      })
      .default({ failure_threshold: 3, probe_after: 1_800_000, min_failure_span: 30_000 }),
    fallback: z
      .strictObject({
        /** Consecutive ping failures (tool working) before a `tool:<name>` backend switches. */
        after_failures: z.number().int().min(1).max(1_000).default(3),
      })
      .default({ after_failures: 3 }),
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
         * @defaultValue 64
         */
        concurrency: z.number().int().min(1).max(1_000).default(64),
      })
      .default({ max_message_bytes: 65_536, concurrency: 64 }),
    http: z
      .strictObject({
        /**
         * Interface of the HTTP server (/metrics, /healthz, /readyz, Bull Board). Loopback by
         * default so that nothing is exposed by accident; containers set `0.0.0.0` (env HTTP_HOST).
         */
        host: z.string().min(1).default("127.0.0.1"),
        /** One port for whichever program reads this file (env HTTP_PORT); `0` = ephemeral. Overrides the two below. */
        port: z.number().int().min(0).max(65_535).optional(),
        /** Default port of the scheduler. @defaultValue 9464 */
        scheduler_port: z.number().int().min(0).max(65_535).default(9464),
        /** Default port of the worker: differs from the scheduler's so both run side by side. @defaultValue 9465 */
        worker_port: z.number().int().min(0).max(65_535).default(9465),
      })
      .default({ host: "127.0.0.1", scheduler_port: 9464, worker_port: 9465 }),
    admin: z
      .strictObject({
        /** Bull Board basic-auth user. @defaultValue "admin" */
        username: z.string().min(1).max(128).default("admin"),
        /** Bull Board basic-auth password (use `${ENV}`). Without it Bull Board is served only on loopback. */
        password: z.string().min(12, "must be at least 12 characters").max(1_024).optional(),
      })
      .default({ username: "admin" }),
    log: z
      .strictObject({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      })
      .default({ level: "info" }),
    backends: z.array(BackendSchema).default([]),
  })
  .superRefine((file, ctx) => {
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
    const onlyFor = (key: "nodes" | "sentinels" | "sentinel_name", needs: string) => {
      if (r[key] !== undefined && mode !== needs) ctx.addIssue({ code: "custom", path: ["redis", key], message: `only used when redis.mode is ${needs} (it is ${mode})` });
    };
    onlyFor("nodes", "cluster");
    onlyFor("sentinels", "sentinel");
    onlyFor("sentinel_name", "sentinel");
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

export type ConfigFile = z.infer<typeof ConfigFileSchema>;
