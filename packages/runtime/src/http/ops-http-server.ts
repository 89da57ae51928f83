import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, type Registry } from "prom-client";
import { UsageError } from "../usage-error.js";
import type { Logger } from "pino";

/** What `/readyz` answers: ready only when every check is true. */
export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, boolean>>;
  /** Why each failing Redis connection fails, in one line (TLS, authentication, network). */
  readonly causes?: Readonly<Record<string, string>>;
}

/** A handler that serves every path under `prefix` (e.g. Bull Board under `/admin/queues`). */
export interface MountedHandler {
  readonly prefix: string;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export interface OpsHttpServerOptions {
  /** Interface to bind (config `http.host`). */
  readonly host: string;
  /** Port; 0 = an ephemeral port (tests, several workers on one machine). Read it from {@link OpsHttpServer.port}. */
  readonly port: number;
  /** The config key the port came from, named when it cannot be used. @defaultValue "http.port" */
  readonly portKey?: string;
  /** The process's metrics registry; default process metrics are added to it once. */
  readonly registry: Registry;
  /** Evaluated on each `/readyz`; must not hang (bound each check with {@link withTimeout}). */
  readonly readiness: () => Promise<Readiness>;
  readonly log: Logger;
  readonly mounts?: readonly MountedHandler[];
}

export interface OpsHttpServer {
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** `http://host:port` for local clients (0.0.0.0 is shown as 127.0.0.1). */
  readonly url: string;
  /** Stops listening and closes open (keep-alive) connections. Idempotent. */
  close(): Promise<void>;
}

/** Rejects (resolves `fallback`) when `promise` does not settle within `ms`; the timer never keeps the process alive. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise.catch(() => fallback),
      new Promise<T>((resolve) => {
        timer = setTimeout(() => resolve(fallback), ms);
        timer.unref();
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Adds prom-client's process metrics (CPU, memory, event loop, GC) to a registry, once. */
export function ensureDefaultMetrics(registry: Registry): void {
  if (registry.getSingleMetric("process_cpu_user_seconds_total")) return;
  const before = new Set(registry.getMetricsAsArray().map((m) => m.name));
  collectDefaultMetrics({ register: registry });
  // prom-client also exports `nodejs_active_{handles,requests,resources}_total` as gauges, which
  // `promtool check metrics` rejects (a gauge must not end in _total). They are the sums of the
  // `nodejs_active_*{type}` gauges it exports too, so dropping them loses nothing.
  for (const m of registry.getMetricsAsArray()) {
    if (!before.has(m.name) && m.name.endsWith("_total") && (m as unknown as { type: string }).type === "gauge") {
      registry.removeSingleMetric(m.name);
    }
  }
}

/** True for 127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * The operations endpoints every process serves: `/metrics` (Prometheus text), `/healthz` (the
 * process and its event loop answer), `/readyz` (200 when every readiness check holds, else 503,
 * with the checks as JSON), plus mounted handlers (Bull Board on the scheduler).
 */
export async function startOpsHttpServer(options: OpsHttpServerOptions): Promise<OpsHttpServer> {
  const { registry, log } = options;
  ensureDefaultMetrics(registry);
  const mounts = options.mounts ?? [];

  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const mount = mounts.find((m) => path === m.prefix || path.startsWith(`${m.prefix}/`));
    if (mount) return mount.handle(req, res);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    if (path === "/readyz") {
      const r = await options.readiness();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "application/json" }).end(`${JSON.stringify(r)}\n`);
      return;
    }
    if (path === "/metrics") {
      const body = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType }).end(body);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  };

  const server = createServer((req, res) => {
    serve(req, res).catch((err: unknown) => {
      log.error({ err, path: req.url }, "http request failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    });
  });
  // Scrapers and probes use keep-alive; a short idle timeout keeps shutdown quick.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      // The configured address cannot be used: a config problem, named by its key.
      if (err.code === "EADDRINUSE" || err.code === "EACCES" || err.code === "EADDRNOTAVAIL") {
        reject(new UsageError(`${options.portKey ?? "http.port"}: cannot listen on ${options.host}:${options.port} (${err.code === "EADDRINUSE" ? "the port is already in use" : err.message})`));
      } else reject(err);
    });
    server.listen(options.port, options.host, () => {
      server.removeAllListeners("error");
      resolve();
    });
  });
  server.on("error", (err) => log.error({ err }, "http server error"));
  const port = (server.address() as AddressInfo).port;
  const shownHost = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host.includes(":") ? `[${options.host}]` : options.host;

  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${shownHost}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** A Redis connection answers PING within `ms` (and is connected: queued commands don't count). */
export async function redisAnswers(redis: { status: string; ping(): Promise<string> }, ms = 1_000): Promise<boolean> {
  if (redis.status !== "ready") return false;
  return withTimeout(
    redis.ping().then((r) => r === "PONG"),
    ms,
    false,
  );
}

/** Where one program's ops HTTP server listens: `http.port` (HTTP_PORT) if set, else the program's own default port. */
export function httpListenFor(
  config: { readonly http: { readonly host: string; readonly port: number | undefined; readonly schedulerPort: number; readonly workerPort: number } },
  program: "scheduler" | "worker",
): { host: string; port: number; portKey: string } {
  if (config.http.port !== undefined) return { host: config.http.host, port: config.http.port, portKey: "http.port (or HTTP_PORT)" };
  if (program === "scheduler") return { host: config.http.host, port: config.http.schedulerPort, portKey: "http.scheduler_port" };
  return { host: config.http.host, port: config.http.workerPort, portKey: "http.worker_port" };
}
