/** How a backend is kept alive. `tool` pings first and falls back (see docs/contract.md). */
export type KeepaliveMethod =
  | { readonly kind: "ping" }
  | { readonly kind: "none" }
  | {
      readonly kind: "tool";
      readonly tool: string;
      readonly args: Readonly<Record<string, unknown>>;
      /** Call the tool on every tick; never ping. */
      readonly everyTick: boolean;
    };

export interface BackendConfig {
  readonly id: string;
  readonly url: string;
  readonly stateful: boolean;
  readonly sessionTtlMs: number | undefined;
  readonly method: KeepaliveMethod;
  /** True when the file set `keepalive_method`; an explicit method overrides the stateless/TTL defaults. */
  readonly methodExplicit: boolean;
  /** Effective interval (the backend's own, else the server's). */
  readonly intervalMs: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** The validated, frozen configuration every process runs on. Built only by `loadConfig`/`parseConfig`. */
export interface KeepaliveConfig {
  readonly redis: {
    readonly mode: "standalone" | "sentinel" | "cluster";
    /** Standalone: the node; sentinel: credentials/db/TLS of the data nodes (optional). */
    readonly url: string | undefined;
    readonly nodes: readonly string[];
    readonly sentinels: readonly string[];
    readonly sentinelName: string | undefined;
    readonly prefix: string;
  };
  readonly lock: {
    readonly redisUrls: readonly string[];
    /** Worker pair-lock TTL; undefined ⇒ `keepalive.timeoutMs` + 1 s. */
    readonly ttlMs: number | undefined;
  };
  readonly sessions: { readonly reapIntervalMs: number; readonly reconcileIntervalMs: number };
  readonly keepalive: {
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly concurrency: number;
    readonly maxResponseBytes: number;
    /** `keepalive.catch_up`: overdue ticks after an outage spread over the next interval, or called at once. */
    readonly catchUp: "spread" | "at_once";
    /** Keepalive shards (resolved: 16 in cluster mode, else 1, unless set). */
    readonly shards: number;
  };
  readonly breaker: { readonly failureThreshold: number; readonly probeAfterMs: number; readonly minFailureSpanMs: number };
  readonly fallback: { readonly afterFailures: number };
  readonly registration: { readonly maxMessageBytes: number; readonly concurrency: number };
  readonly http: {
    readonly host: string;
    /** Set ⇒ both programs use it (HTTP_PORT); else each its own default below. */
    readonly port: number | undefined;
    readonly schedulerPort: number;
    readonly workerPort: number;
  };
  /** Bull Board credentials; `password` undefined ⇒ no auth, allowed only on a loopback host. */
  readonly admin: { readonly username: string; readonly password: string | undefined };
  readonly log: { readonly level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent" };
  readonly backends: readonly BackendConfig[];
  /** Where the config came from, for logs (`file.yaml`, `<inline>`). */
  readonly source: string;
}
