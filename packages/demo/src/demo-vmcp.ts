import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { closeRedis, createKeys, createRedis, createSessionPublisher, keyLayout, type RedisTarget } from "@vmcp-keepalive/shared";
import { parseDuration } from "@vmcp-keepalive/runtime";
import { initializeBackendSession } from "./demo-vmcp-session.js";
import { boundedStep, endSessions } from "./stop-steps.js";

/**
 * A stand-in vMCP for docker-compose and Kubernetes demos: keeps `--sessions` sessions open on
 * one backend and registers them on `vmcp-sessions`, touching each every `--touch-every` and
 * replacing the oldest one every `--churn-every` (session.ended + a new registration), so the
 * scheduler, workers and dashboards always have something to do. Stops cleanly on SIGTERM.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "backend-url": { type: "string" },
      "backend-id": { type: "string", default: "demo-stateful" },
      sessions: { type: "string", default: "20" },
      "touch-every": { type: "string", default: "30s" },
      "churn-every": { type: "string", default: "20s" },
      prefix: { type: "string", default: "vmk" },
      /** = the servers' keepalive.shards; default 16 on a Redis Cluster (REDIS_NODES), else 1. */
      shards: { type: "string" },
      "replica-id": { type: "string", default: "demo-vmcp" },
    },
    strict: true,
  });
  const backendUrl = values["backend-url"] ?? process.env["DEMO_BACKEND_URL"];
  // One Redis (REDIS_URL) or a Redis Cluster (REDIS_NODES: comma-separated seed URLs).
  const nodes = (process.env["REDIS_NODES"] ?? "").split(",").filter(Boolean);
  const redisUrl = process.env["REDIS_URL"];
  if (!backendUrl) throw new Error("--backend-url (or DEMO_BACKEND_URL) is required");
  if (nodes.length === 0 && !redisUrl) throw new Error("REDIS_URL (or REDIS_NODES for a Redis Cluster) is required");
  // TLS with a private CA and client certificate: REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE (PEM files).
  const pem = (variable: string) => {
    const path = process.env[variable];
    return path ? readFileSync(path, "utf8") : undefined;
  };
  const tlsFiles = { ca: pem("REDIS_TLS_CA_FILE"), cert: pem("REDIS_TLS_CERT_FILE"), key: pem("REDIS_TLS_KEY_FILE") };
  const tls = Object.values(tlsFiles).some((v) => v !== undefined) ? tlsFiles : undefined;
  const target: RedisTarget = nodes.length > 0 ? { mode: "cluster", nodes, tls } : { mode: "standalone", url: redisUrl!, tls };
  const shards = values.shards === undefined ? undefined : Number(values.shards);
  if (shards !== undefined && !(Number.isInteger(shards) && shards >= 1 && shards <= 1_024)) throw new Error(`--shards ${values.shards} must be an integer from 1 to 1024`);
  const sessions = Number(values.sessions);
  const touchMs = parseDuration(values["touch-every"]);
  const churnMs = parseDuration(values["churn-every"]);
  if (!Number.isInteger(sessions) || sessions < 1 || sessions > 10_000) throw new Error(`--sessions ${values.sessions} must be an integer from 1 to 10000`);
  if (touchMs === undefined || churnMs === undefined) throw new Error("--touch-every and --churn-every take durations such as 30s");

  const redis = createRedis(target, "client", "vmk-demo-vmcp");
  const keys = createKeys(values.prefix, keyLayout(target.mode === "cluster", shards));
  const publisher = createSessionPublisher({ connection: redis, queue: keys.sessionsQueue, replicaId: values["replica-id"] });
  const live: string[] = [];
  let n = 0;
  const say = (line: string) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), name: "vmcp-keepalive-demo-vmcp", msg: line, live: live.length })}\n`);

  const openOne = async () => {
    const backend = await initializeBackendSession(backendUrl);
    const id = `${values["replica-id"]}-${Date.now().toString(36)}-${n++}`;
    await publisher.register(id, {
      sessionTtlMs: 3_600_000,
      backends: [{ backendId: values["backend-id"], backendSessionId: backend.sessionId, protocolVersion: backend.protocolVersion }],
    });
    live.push(id);
  };

  let stopping = false;
  const timers: NodeJS.Timeout[] = [];
  // Each step has a deadline (a Redis that is gone must not hold up the stop); a second signal
  // exits at once.
  const stop = async () => {
    if (stopping) {
      say("second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    timers.forEach(clearInterval);
    await boundedStep(say, `publish session.ended for ${live.length} sessions`, 3_000, () => endSessions(publisher, live, "demo vMCP stopped"));
    await boundedStep(say, "close the Redis connection", 2_000, async () => {
      await publisher.close();
      await closeRedis(redis);
    });
    say("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());

  // The backend may start after us (compose): retry until the first session opens.
  for (let attempt = 1; live.length === 0 && !stopping; attempt++) {
    await openOne().catch((err: unknown) => say(`backend not reachable yet (attempt ${attempt}): ${(err as Error).message}`));
    if (live.length === 0) await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * attempt)));
  }
  while (live.length < sessions && !stopping) await openOne();
  say(`registered ${live.length} sessions`);

  const guard = (what: string, fn: () => Promise<void>) => () => void fn().catch((err: unknown) => say(`${what} failed: ${(err as Error).message}`));
  timers.push(
    setInterval(
      guard("touch", async () => {
        for (const id of live) await publisher.touch(id);
      }),
      touchMs,
    ),
  );
  timers.push(
    setInterval(
      guard("churn", async () => {
        const oldest = live.shift();
        if (oldest) await publisher.end(oldest, "demo churn");
        await openOne();
      }),
      churnMs,
    ),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`vmcp-keepalive-demo-vmcp: ${(err as Error).message}\n`);
  process.exit(1);
});
