import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { closeRedis, createKeys, createRedis, createSessionPublisher, redisServerSettingsArgs, type RedisConnection, type SessionPublisher } from "@vmcp-keepalive/shared";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { parseDuration } from "@vmcp-keepalive/runtime";
import { freePort, startEmbeddedRedis, type EmbeddedRedis } from "@vmcp-keepalive/testkit";
import { startDemoMcpServer, type DemoMcpServer } from "./demo-mcp-server.js";
import { echoOnSession, initializeBackendSession, type DemoBackendSession } from "./demo-vmcp-session.js";
import { boundedStep, endSessions, isRunning, killPid, pidAlive, stopChild } from "./stop-steps.js";

/**
 * The README's first command: the whole system on one machine. Embedded redis-server (unless
 * REDIS_URL is set), a stateful SDK backend that drops sessions idle for 20 s, a scheduler and a
 * worker as real child processes, and a demo vMCP that opens sessions and registers them.
 */
const PROGRAM = "vmcp-keepalive-dev";
const IDLE_TTL_MS = 20_000;

/*
 * How the demo stops (Ctrl-C, SIGTERM, SIGHUP, or --duration): each step has a deadline, so the
 * whole stop takes a few seconds even when Redis or a child is gone or hung; a second signal, or
 * the overall deadline, kills what is left and exits non-zero.
 */
/** Deadline of each command on the demo vMCP's connection (registrations, session.ended, status). */
const COMMAND_TIMEOUT_MS = 1_000;
/** Publishing session.ended for every registered session (in parallel). */
const END_DEADLINE_MS = 2_000;
/** Closing the demo vMCP's queue and connection. */
const CLOSE_DEADLINE_MS = 1_000;
/** How long the scheduler and the worker may take to exit on the group's signal before SIGTERM. */
const CHILD_OWN_STOP_MS = 300;
/** SIGTERM to SIGKILL for the scheduler and the worker. */
const CHILD_GRACE_MS = 3_000;
const BACKEND_DEADLINE_MS = 1_000;
/** SIGTERM to SIGKILL for the embedded redis-server. */
const REDIS_GRACE_MS = 2_000;
/** The whole clean stop; beyond it the stop is forced. Above the sum of the steps' deadlines. */
const STOP_DEADLINE_MS = 12_000;
/** Signals this close to the first are the same request passed on (see onSignal). */
const RELAY_WINDOW_MS = 500;

const require = createRequire(import.meta.url);

function binOf(pkg: string, file: string): string {
  return join(dirname(require.resolve(`${pkg}/package.json`)), "bin", file);
}

function say(line: string): void {
  process.stdout.write(`[dev] ${line}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: "string" },
      sessions: { type: "string", default: "5" },
      dir: { type: "string", default: ".vmk-dev" },
      interval: { type: "string", default: "5s" },
    },
    strict: true,
  });
  const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
  if (values.duration !== undefined && (durationMs === undefined || durationMs < 1_000)) throw new Error(`--duration ${values.duration} is not a duration (e.g. 30s)`);
  const sessions = Number(values.sessions);
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > 1_000) throw new Error(`--sessions ${values.sessions} must be an integer from 1 to 1000`);
  const intervalMs = parseDuration(values.interval);
  if (intervalMs === undefined || intervalMs < 1_000 || intervalMs >= IDLE_TTL_MS) throw new Error(`--interval must be from 1s to below the demo backend's 20s idle TTL`);

  const dir = resolve(values.dir);
  mkdirSync(join(dir, "logs"), { recursive: true });

  // What is running, filled in as it starts; the stop reads it as it goes.
  let embedded: EmbeddedRedis | undefined;
  let backend: DemoMcpServer | undefined;
  const children: { name: string; child: ChildProcess }[] = [];
  let redis: RedisConnection | undefined;
  let publisher: SessionPublisher | undefined;
  const opened: { id: string; session: DemoBackendSession }[] = [];
  let timer: NodeJS.Timeout | undefined;

  let stopping: { at: number } | undefined;

  /** Kills whatever is still running (SIGKILL) and exits with `code` at once. */
  const forceExit = (why: string, code: number): never => {
    const killed: string[] = [];
    for (const { name, child } of children) {
      if (!isRunning(child)) continue;
      child.kill("SIGKILL");
      killed.push(`${name} (pid ${child.pid})`);
    }
    if (embedded && killPid(embedded.pid)) {
      killed.push(`redis-server (pid ${embedded.pid})`);
      rmSync(embedded.dir, { recursive: true, force: true });
    }
    say(`${why}: forcing the stop; killed ${killed.length > 0 ? killed.join(", ") : "nothing (every child had exited)"}; exiting ${code}`);
    process.exit(code);
  };

  /**
   * The clean stop: every step bounded by a deadline, so that a Redis or a child that is gone
   * or hung (the group's signal reaches them too, often first) costs at most that deadline.
   * Sessions end first while Redis may still be up; then the programs and the backend; Redis last.
   */
  const shutdown = async (reason: string, code: number): Promise<void> => {
    if (stopping) return;
    stopping = { at: Date.now() };
    say(`shutting down (${reason})…`);
    const watchdog = setTimeout(() => forceExit(`clean stop still running after ${STOP_DEADLINE_MS / 1000} s`, 1), STOP_DEADLINE_MS);
    clearInterval(timer);
    const conn = redis;
    if (publisher && conn && opened.length > 0) {
      const pub = publisher;
      await boundedStep(say, `publish session.ended for ${opened.length} sessions`, END_DEADLINE_MS, async () => {
        if (conn.status !== "ready") throw new Error(`the Redis connection is ${conn.status} (redis-server already stopped?)`);
        await endSessions(
          pub,
          opened.map((o) => o.id),
          "demo stopped",
        );
      });
    }
    if (conn) {
      await boundedStep(say, "close the demo vMCP's Redis connection", CLOSE_DEADLINE_MS, async () => {
        await publisher?.close();
        await closeRedis(conn, CLOSE_DEADLINE_MS / 2);
      });
      conn.disconnect();
    }
    await Promise.all([
      ...children.map(({ name, child }) =>
        boundedStep(say, `stop the ${name}`, CHILD_OWN_STOP_MS + CHILD_GRACE_MS + 1_000, () => stopChild(child, { ownStopMs: CHILD_OWN_STOP_MS, graceMs: CHILD_GRACE_MS })),
      ),
      backend ? boundedStep(say, "stop the demo MCP backend", BACKEND_DEADLINE_MS, () => backend!.stop()) : undefined,
    ]);
    if (embedded) {
      const server = embedded;
      const stopped = await boundedStep(say, "stop the embedded redis-server", REDIS_GRACE_MS, () => server.stop());
      if (!stopped && killPid(server.pid)) {
        await boundedStep(say, "kill the embedded redis-server (SIGKILL)", 1_000, () => server.stop());
      }
    }
    const left = [
      ...children.filter(({ child }) => isRunning(child)).map(({ name, child }) => `${name} (pid ${child.pid})`),
      ...(embedded && pidAlive(embedded.pid) ? [`redis-server (pid ${embedded.pid})`] : []),
    ];
    clearTimeout(watchdog);
    if (left.length > 0) forceExit(`still running after the clean stop: ${left.join(", ")}`, 1);
    say(`stopped; nothing left running (${((Date.now() - stopping.at) / 1000).toFixed(1)} s)`);
    process.exit(code);
  };

  // npm and timeout(1) pass the group's signal on, so one Ctrl-C or one `timeout` can arrive
  // twice within milliseconds: that is the same request. A signal after that forces the stop.
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopping) return void shutdown(signal, 0);
    if (Date.now() - stopping.at < RELAY_WINDOW_MS) return say(`${signal} again within ${RELAY_WINDOW_MS} ms: the same stop request, passed on`);
    forceExit(`${signal} while stopping`, 128 + (osConstants.signals[signal] ?? 0));
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
  // A reader that went away (a closed pipe) must not crash the demo half-way through its stop.
  process.stdout.on("error", () => {});

  try {
    let redisUrl = process.env["REDIS_URL"];
    if (!redisUrl) {
      embedded = await startEmbeddedRedis({ args: redisServerSettingsArgs() });
      redisUrl = embedded.url;
      say(`embedded redis-server started on ${embedded.url} (pid ${embedded.pid}, data in ${embedded.dir})`);
    } else {
      say(`using REDIS_URL=${redisUrl}`);
    }
    if (stopping) return;

    backend = await startDemoMcpServer({ port: 0, idleTtlMs: IDLE_TTL_MS });
    say(`demo MCP backend on ${backend.url}: sessions idle for ${IDLE_TTL_MS / 1000}s expire`);

    // Ops HTTP on loopback only: Bull Board is served without a password there (the programs
    // refuse that on any other interface). Free ports, so a second checkout's demo can run too.
    const schedulerPort = await freePort();
    const workerPort = await freePort();
    const configPath = join(dir, "config.yaml");
    writeFileSync(
      configPath,
      [
        "# Written by vmcp-keepalive-dev; see README.md for every key.",
        "redis:",
        `  url: ${redisUrl}`,
        "  prefix: vmk",
        "keepalive:",
        `  interval: ${values.interval}`,
        `  timeout: ${Math.min(2_000, Math.floor(intervalMs / 2))}ms`,
        "  concurrency: 20",
        "http:",
        "  host: 127.0.0.1",
        `  scheduler_port: ${schedulerPort}`,
        `  worker_port: ${workerPort}`,
        "backends:",
        "  - id: demo-stateful",
        `    url: ${backend.url}`,
        "    stateful: true",
        `    session_ttl: ${IDLE_TTL_MS / 1000}s`,
        "  - id: demo-stateless",
        `    url: ${backend.url}`,
        "    stateful: false",
        "",
      ].join("\n"),
    );
    if (stopping) return;

    const startChild = (name: string, bin: string) => {
      const log = createWriteStream(join(dir, "logs", `${name}.log`));
      const child = spawn(process.execPath, [bin, "--config", configPath], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, REDIS_URL: redisUrl, HTTP_PORT: "", HTTP_HOST: "" },
      });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      child.on("exit", (code, signal) => {
        // The group's signal can reach a child before the demo handles its own copy: an exit is
        // unexpected only if no stop has begun a moment later.
        setTimeout(() => {
          if (stopping) return;
          say(`${name} exited unexpectedly (code ${code}, signal ${signal}); see ${join(dir, "logs", `${name}.log`)}`);
          void shutdown(`${name} exited`, 1);
        }, RELAY_WINDOW_MS);
      });
      children.push({ name, child });
      return child;
    };
    const scheduler = startChild("scheduler", binOf("@vmcp-keepalive/scheduler", "vmcp-keepalive-scheduler.js"));
    const worker = startChild("worker", binOf("@vmcp-keepalive/worker", "vmcp-keepalive-worker.js"));
    say(`scheduler (pid ${scheduler.pid}) and worker (pid ${worker.pid}) started`);

    // The demo vMCP: opens sessions on the backend and registers them through the queue. Its
    // connection queues nothing while Redis is away and gives each command 1 s: publishing
    // session.ended on the way out fails fast when the group's signal stopped Redis first.
    redis = createRedis(redisUrl, "client", "vmk-demo-vmcp", { enableOfflineQueue: false, commandTimeout: COMMAND_TIMEOUT_MS });
    publisher = createSessionPublisher({ connection: redis, prefix: "vmk", replicaId: "demo-vmcp" });
    for (let i = 0; i < sessions && !stopping; i++) {
      const session = await initializeBackendSession(backend.url);
      const id = `demo-${i + 1}`;
      opened.push({ id, session });
      await publisher.register(id, {
        sessionTtlMs: 3_600_000,
        backends: [{ backendId: "demo-stateful", backendSessionId: session.sessionId, protocolVersion: session.protocolVersion }, { backendId: "demo-stateless" }],
      });
    }
    if (stopping) return;
    const control = await initializeBackendSession(backend.url);
    say(`demo vMCP registered ${sessions} sessions (demo-1..demo-${sessions}); one control session is NOT registered`);
    say("where to look:");
    say(`  pairs and last outcomes: pnpm exec vmcp-keepalive status --config ${configPath}`);
    say(`  Bull Board (queues, job schedulers, rejected messages): http://127.0.0.1:${schedulerPort}/admin/queues`);
    say(`  metrics: http://127.0.0.1:${schedulerPort}/metrics (scheduler), http://127.0.0.1:${workerPort}/metrics (worker); /healthz, /readyz on both`);
    say(`  scheduler / worker logs: ${join(dir, "logs")}/scheduler.log, worker.log (JSON, one line per event)`);
    say(`  in ${IDLE_TTL_MS / 1000}s the control session expires; the registered ones stay alive`);
    say("Ctrl-C stops everything (a second Ctrl-C forces it).");

    const store = createSessionStore(redis, createKeys("vmk"));
    const demoBackend = backend;
    const started = Date.now();
    let verified = false;
    const report = async () => {
      const pairs = await store.listPairs();
      const active = pairs.filter((p) => p.status === "active");
      const ok = active.filter((p) => p.lastOutcome === "success").length;
      const pings = demoBackend.pings();
      say(`keepalives flowing: ${pings} pings received by the backend; ${active.length} active pairs (${ok} last ok), ${pairs.length - active.length} off (stateless)`);
      if (!verified && Date.now() - started > IDLE_TTL_MS + 3_000) {
        verified = true;
        const first = opened[0];
        const kept = first
          ? await echoOnSession(demoBackend.url, first.session, "still here").then(
              () => "usable",
              (e: unknown) => `FAILED (${String(e)})`,
            )
          : "n/a";
        const lost = await echoOnSession(demoBackend.url, control, "hello?").then(
          () => "still usable (unexpected)",
          () => "expired (404), as expected without keepalive",
        );
        say(`after ${Math.round((Date.now() - started) / 1000)}s: registered session demo-1 is ${kept}; control session ${lost}`);
      }
    };
    timer = setInterval(() => void report().catch((err: unknown) => stopping || say(`status error: ${(err as Error).message}`)), 5_000);
    if (durationMs !== undefined) setTimeout(() => void shutdown(`--duration ${values.duration} elapsed`, 0), durationMs);
  } catch (err) {
    if (stopping) return;
    say(`failed: ${(err as Error).message}`);
    await shutdown("start-up failed", 1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${PROGRAM}: ${(err as Error).message}\n`);
  process.exit(2);
});
