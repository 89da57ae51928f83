import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { closeRedis, createKeys, createRedis, createSessionPublisher } from "@vmcp-keepalive/shared";
import { createSessionStore } from "@vmcp-keepalive/scheduler";
import { parseDuration } from "@vmcp-keepalive/runtime";
import { freePort, startEmbeddedRedis, type EmbeddedRedis } from "@vmcp-keepalive/testkit";
import { startDemoMcpServer } from "./demo-mcp-server.js";
import { echoOnSession, initializeBackendSession, type DemoBackendSession } from "./demo-vmcp-session.js";

/**
 * The README's first command: the whole system on one machine. Embedded redis-server (unless
 * REDIS_URL is set), a stateful SDK backend that drops sessions idle for 20 s, a scheduler and a
 * worker as real child processes, and a demo vMCP that opens sessions and registers them.
 */
const PROGRAM = "vmcp-keepalive-dev";
const IDLE_TTL_MS = 20_000;
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
  const cleanups: (() => Promise<void>)[] = [];
  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    say("shutting down…");
    for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => say(`cleanup error: ${(err as Error).message}`));
    say("stopped; nothing left running");
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));

  try {
    let redisUrl = process.env["REDIS_URL"];
    if (!redisUrl) {
      const embedded: EmbeddedRedis = await startEmbeddedRedis();
      cleanups.push(() => embedded.stop());
      redisUrl = embedded.url;
      say(`embedded redis-server started on ${embedded.url} (data in ${embedded.dir})`);
    } else {
      say(`using REDIS_URL=${redisUrl}`);
    }

    const backend = await startDemoMcpServer({ port: 0, idleTtlMs: IDLE_TTL_MS });
    cleanups.push(() => backend.stop());
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

    const children: ChildProcess[] = [];
    const startChild = (name: string, bin: string) => {
      const log = createWriteStream(join(dir, "logs", `${name}.log`));
      const child = spawn(process.execPath, [bin, "--config", configPath], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, REDIS_URL: redisUrl, HTTP_PORT: "", HTTP_HOST: "" },
      });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      child.on("exit", (code, signal) => {
        if (!shuttingDown) {
          say(`${name} exited unexpectedly (code ${code}, signal ${signal}); see ${join(dir, "logs", `${name}.log`)}`);
          void shutdown(1);
        }
      });
      children.push(child);
      cleanups.push(
        () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
            child.once("exit", () => {
              clearTimeout(force);
              done();
            });
            child.kill("SIGTERM");
          }),
      );
    };
    startChild("scheduler", binOf("@vmcp-keepalive/scheduler", "vmcp-keepalive-scheduler.js"));
    startChild("worker", binOf("@vmcp-keepalive/worker", "vmcp-keepalive-worker.js"));

    // The demo vMCP: opens sessions on the backend and registers them through the queue.
    const redis = createRedis(redisUrl, "client", "vmk-demo-vmcp");
    cleanups.push(() => closeRedis(redis));
    const publisher = createSessionPublisher({ connection: redis, prefix: "vmk", replicaId: "demo-vmcp" });
    const opened: { id: string; session: DemoBackendSession }[] = [];
    for (let i = 0; i < sessions; i++) {
      const session = await initializeBackendSession(backend.url);
      const id = `demo-${i + 1}`;
      opened.push({ id, session });
      await publisher.register(id, {
        sessionTtlMs: 3_600_000,
        backends: [{ backendId: "demo-stateful", backendSessionId: session.sessionId, protocolVersion: session.protocolVersion }, { backendId: "demo-stateless" }],
      });
    }
    cleanups.push(async () => {
      for (const o of opened) await publisher.end(o.id, "demo stopped").catch(() => {});
      await publisher.close();
    });
    const control = await initializeBackendSession(backend.url);
    say(`demo vMCP registered ${sessions} sessions (demo-1..demo-${sessions}); one control session is NOT registered`);
    say("where to look:");
    say(`  pairs and last outcomes: pnpm exec vmcp-keepalive status --config ${configPath}`);
    say(`  Bull Board (queues, job schedulers, rejected messages): http://127.0.0.1:${schedulerPort}/admin/queues`);
    say(`  metrics: http://127.0.0.1:${schedulerPort}/metrics (scheduler), http://127.0.0.1:${workerPort}/metrics (worker); /healthz, /readyz on both`);
    say(`  scheduler / worker logs: ${join(dir, "logs")}/scheduler.log, worker.log (JSON, one line per event)`);
    say(`  in ${IDLE_TTL_MS / 1000}s the control session expires; the registered ones stay alive`);
    say("Ctrl-C stops everything.");

    const store = createSessionStore(redis, createKeys("vmk"));
    const started = Date.now();
    let verified = false;
    const report = async () => {
      const pairs = await store.listPairs();
      const active = pairs.filter((p) => p.status === "active");
      const ok = active.filter((p) => p.lastOutcome === "success").length;
      const pings = backend.pings();
      say(`keepalives flowing: ${pings} pings received by the backend; ${active.length} active pairs (${ok} last ok), ${pairs.length - active.length} off (stateless)`);
      if (!verified && Date.now() - started > IDLE_TTL_MS + 3_000) {
        verified = true;
        const first = opened[0];
        const kept = first
          ? await echoOnSession(backend.url, first.session, "still here").then(
              () => "usable",
              (e: unknown) => `FAILED (${String(e)})`,
            )
          : "n/a";
        const lost = await echoOnSession(backend.url, control, "hello?").then(
          () => "still usable (unexpected)",
          () => "expired (404), as expected without keepalive",
        );
        say(`after ${Math.round((Date.now() - started) / 1000)}s: registered session demo-1 is ${kept}; control session ${lost}`);
      }
    };
    const timer = setInterval(() => void report().catch((err: unknown) => say(`status error: ${(err as Error).message}`)), 5_000);
    cleanups.push(async () => clearInterval(timer));
    if (durationMs !== undefined) setTimeout(() => void shutdown(0), durationMs);
  } catch (err) {
    say(`failed: ${(err as Error).message}`);
    await shutdown(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${PROGRAM}: ${(err as Error).message}\n`);
  process.exit(2);
});
