import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { createVmcpClient, QUEUE_EVENTS, QUEUE_KEEPALIVE, QUEUE_SESSIONS, type VmcpClient, type VmcpEvent } from "@vmcp-keepalive/shared";
import { openBackendSession, startEmbeddedRedis, startMcpTestBackend, waitFor, type EmbeddedRedis, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { get } from "./helpers/ops.js";
import { httpUrlOf, runCli, startProgram, stopAll, writeConfig, type RunningProcess } from "./helpers/processes.js";
import { dumpRedis } from "./helpers/redis-dump.js";

/**
 * A user's token handed to the client as session credentials reaches the backend (the backend
 * binds the session to it) and appears nowhere else: not in any Redis value (job data included),
 * not in Redis's append-only file, not in a log line at trace level (through successes, a refused
 * token, an expiry and credentials no key opens), not on /metrics, not in Bull Board's API, not in
 * the status command's output.
 */
describe("session credentials never appear in the clear", () => {
  const TOKEN = `planted-${randomBytes(8).toString("hex")}-user-token`;
  const REVOKED = `planted-${randomBytes(8).toString("hex")}-revoked-token`;
  const k1 = { id: "k1", key: randomBytes(32).toString("base64") };
  const PASSWORD = "board-password-for-this-test";
  let redisServer: EmbeddedRedis | undefined;
  let backend: McpTestBackend | undefined;
  let vmcp: VmcpClient | undefined;
  let stranger: VmcpClient | undefined;
  const procs: RunningProcess[] = [];
  let redis: Redis | undefined;

  afterAll(async () => {
    await vmcp?.close();
    await stranger?.close();
    expect(await stopAll(procs)).toEqual(procs.map(() => 0));
    redis?.disconnect();
    await backend?.stop();
    await redisServer?.stop();
  });

  it("appears in no Redis value, AOF, log, metric, Bull Board answer or status line", async () => {
    redisServer = await startEmbeddedRedis({ appendOnly: true });
    const prefix = "vmk";
    backend = await startMcpTestBackend({ bindAuthorization: true });
    const env = { VMK_CRED_KEY: k1.key, VMK_BOARD_PASSWORD: PASSWORD };
    const config = writeConfig({
      redis: { url: redisServer.url, prefix },
      keepalive: { interval: "1s", timeout: "500ms" },
      credentials: { keys: [{ id: "k1", key: "${VMK_CRED_KEY}" }], refresh_before: "2s" },
      admin: { password: "${VMK_BOARD_PASSWORD}" },
      log: { level: "trace" },
      backends: [{ id: "mail", url: backend.url, auth: "session" }],
    });
    const scheduler = startProgram("scheduler", ["--config", config], env);
    const worker = startProgram("worker", ["--config", config], env);
    procs.push(scheduler, worker);
    const [schedulerUrl, workerUrl] = await Promise.all([httpUrlOf(scheduler), httpUrlOf(worker)]);

    const events: VmcpEvent[] = [];
    vmcp = createVmcpClient({ redisUrl: redisServer.url, prefix, replicaId: "vmcp-1", credentialKeys: [k1], touchIntervalMs: 200 });
    vmcp.onEvent((e) => void events.push(e));
    stranger = createVmcpClient({ redisUrl: redisServer.url, prefix, replicaId: "vmcp-2", credentialKeys: [{ id: "k9", key: randomBytes(32).toString("base64") }] });
    const headers = (token: string) => ({ Authorization: `Bearer ${token}` });
    const open = () => openBackendSession(backend!.url, { authorization: `Bearer ${TOKEN}` });
    const [kept, expiring, refused, unopenable] = [await open(), await open(), await openBackendSession(backend.url, { authorization: `Bearer ${REVOKED}` }), await open()];
    const reg = (client: VmcpClient, sid: string, s: typeof kept, token: string, expiresAt?: number) =>
      client.registerSession(sid, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "mail", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion, credentials: { headers: headers(token), ...(expiresAt ? { expiresAt } : {}) } }],
      });
    await reg(vmcp, "s-kept", kept, TOKEN);
    await reg(vmcp, "s-expiring", expiring, TOKEN, Date.now() + 3_000);
    await reg(vmcp, "s-refused", refused, REVOKED);
    await reg(stranger, "s-unopenable", unopenable, TOKEN);
    backend.revoke(`Bearer ${REVOKED}`);
    // The token travels with touches and updates too.
    vmcp.touch("s-kept", { backendIds: ["mail"], credentials: { mail: { headers: headers(TOKEN) } } });
    await vmcp.updateCredentials("s-kept", "mail", { headers: headers(TOKEN), expiresAt: Date.now() + 600_000 });

    const b = backend;
    await waitFor("keepalives with the token", () => b.calls.filter((c) => c.sessionId === kept.sessionId && c.method === "ping" && c.status === undefined).length >= 3, 20_000, 100);
    await waitFor("every credentials event", () => ["backend.unauthorized", "backend.credentials_expiring", "backend.credentials_expired"].every((t) => events.some((e) => e.type === t)), 20_000, 100);
    // Sealed with a key the worker lacks: skipped, on, one error line naming the key id.
    await waitFor("the pair of an unknown key skipped", () => worker.output().includes("not in this worker's credentials.keys"), 20_000, 100);
    // Let the append-only file take the last writes (fsync every second).
    await new Promise((r) => setTimeout(r, 1_500));

    redis = new Redis(redisServer.url, { connectionName: "harness" });
    const boardAuth = { authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}` };
    const texts: Record<string, string> = {
      schedulerLogs: scheduler.output(),
      workerLogs: worker.output(),
      redis: await dumpRedis(redis),
      schedulerMetrics: (await get(`${schedulerUrl}/metrics`)).body,
      workerMetrics: (await get(`${workerUrl}/metrics`)).body,
      status: (await runCli(["status", "--config", config], env)).stdout + (await runCli(["status", "--json", "--config", config], env)).stdout,
      events: JSON.stringify(events),
    };
    const aofDir = join(redisServer.dir, "appendonlydir");
    texts["aof"] = readdirSync(aofDir)
      .map((f) => readFileSync(join(aofDir, f), "latin1"))
      .join("\n");
    for (const queue of [QUEUE_SESSIONS, QUEUE_KEEPALIVE, QUEUE_EVENTS]) {
      for (const status of ["latest", "completed", "failed", "delayed", "waiting", "active"]) {
        const answer = await get(`${schedulerUrl}/admin/queues/api/queues?activeQueue=${queue}&status=${status}&page=1&jobsPerPage=1000`, boardAuth);
        expect(answer.status).toBe(200);
        texts[`board:${queue}:${status}`] = answer.body;
      }
    }

    // The places searched hold what they should: the sealed envelope (in Redis, the AOF and
    // Bull Board's registration jobs), and the status shows the key id and expiry.
    expect(texts["redis"]).toContain(`${prefix}:pair:s-kept:mail`);
    expect(texts["aof"]).toContain('"kid":"k1"');
    expect(texts[`board:${QUEUE_SESSIONS}:completed`]).toContain('"kid":"k1"');
    expect(texts["status"]).toMatch(/present, key k1, expires/);
    expect(texts["workerMetrics"]).toMatch(/keepalive_failure_count\{[^}]*reason="unauthorized"[^}]*\} 1/);
    for (const [where, text] of Object.entries(texts)) {
      for (const secret of [TOKEN, REVOKED]) expect(text.includes(secret), `a planted token appears in ${where}`).toBe(false);
    }
    process.stdout.write(`[credentials secret] searched ${Object.values(texts).reduce((n, t) => n + t.length, 0)} characters in ${Object.keys(texts).length} places\n`);
  }, 90_000);
});
