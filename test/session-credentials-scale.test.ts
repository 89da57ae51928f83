import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { createKeys, createVmcpClient, type CredentialKey, type VmcpClient, type VmcpEvent } from "@vmcp-keepalive/shared";
import { flushPrefix, openBackendSession, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend, type OpenedSession } from "@vmcp-keepalive/testkit";
import { get, sample } from "./helpers/ops.js";
import { httpUrlOf, startProgram, stopAll, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * Session credentials at scale, with real programs and an SDK backend that binds each session to
 * its bearer token: many users' tokens revoked at once, and a key rotation under load.
 */
const redisUrl = inject("redisUrl");
const newKey = (id: string): CredentialKey => ({ id, key: randomBytes(32).toString("base64") });
const bearer = (i: number) => `Bearer user-${i}-token`;

describe("session credentials at scale", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  let prefix = "";
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
    await flushPrefix(redisUrl, prefix);
  });

  function program(name: "scheduler" | "worker", config: Record<string, unknown>, ring: readonly CredentialKey[]): RunningProcess {
    const env = Object.fromEntries(ring.map((k) => [`VMK_TEST_KEY_${k.id}`, k.key]));
    const file = writeConfig({ redis: { url: redisUrl, prefix }, log: { level: "info" }, ...config, credentials: { keys: ring.map((k) => ({ id: k.id, key: `\${VMK_TEST_KEY_${k.id}}` })) } });
    const p = startProgram(name, ["--config", file], env);
    cleanups.push(async () => expect(await stopAll([p])).toEqual([0]));
    return p;
  }

  async function backendWithSessions(n: number): Promise<{ backend: McpTestBackend; sessions: OpenedSession[] }> {
    const backend = await startMcpTestBackend({ bindAuthorization: true, jsonResponse: true });
    cleanups.push(() => backend.stop());
    const sessions: OpenedSession[] = [];
    for (let i = 0; i < n; i += 25) {
      sessions.push(...(await Promise.all(Array.from({ length: Math.min(25, n - i) }, (_, j) => openBackendSession(backend.url, { authorization: bearer(i + j) })))));
    }
    return { backend, sessions };
  }

  function vmcpClient(ring: readonly CredentialKey[], replicaId: string): VmcpClient {
    const c = createVmcpClient({ redisUrl, prefix, replicaId, credentialKeys: ring, refreshIntervalMs: 0 });
    cleanups.push(() => c.close());
    return c;
  }

  const register = async (c: VmcpClient, sessions: readonly OpenedSession[]) => {
    for (let i = 0; i < sessions.length; i += 100) {
      const results = await Promise.all(
        sessions.slice(i, i + 100).map((s, j) =>
          c.registerSession(`s${i + j}`, {
            sessionTtlMs: 600_000,
            backends: [{ backendId: "mail", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion, credentials: { headers: { Authorization: bearer(i + j) } } }],
          }),
        ),
      );
      expect(results.every((r) => r.ok)).toBe(true);
    }
  };

  it("1,000 pairs of one backend, half with revoked tokens: the breaker stays closed, the other 500 are kept alive, 500 backend.unauthorized events", async () => {
    prefix = testPrefix("creds-revoked");
    const { backend, sessions } = await backendWithSessions(1_000);
    for (let i = 0; i < 1_000; i += 2) backend.revoke(bearer(i));
    const ring = [newKey("k1")];
    // A breaker that a handful of counted failures would open at once.
    const config = { keepalive: { interval: "5s", timeout: "2s" }, breaker: { failure_threshold: 3, min_failure_span: 0 }, backends: [{ id: "mail", url: backend.url, auth: "session" }] };
    const scheduler = program("scheduler", config, ring);
    const worker = program("worker", config, ring);
    await Promise.all([waitForLog(scheduler, "scheduler started", 30_000), waitForLog(worker, "worker started", 30_000)]);
    const workerUrl = await httpUrlOf(worker);
    const vmcp = vmcpClient(ring, "vmcp-1");
    const events: VmcpEvent[] = [];
    vmcp.onEvent((e) => void events.push(e));
    const registeredAt = Date.now();
    await register(vmcp, sessions);

    const unauthorized = () => events.filter((e) => e.type === "backend.unauthorized");
    await waitFor("500 backend.unauthorized events", () => unauthorized().length >= 500, 40_000, 200);
    // Every good pair is called again after the revoked ones stopped.
    const stoppedAt = Date.now();
    const good = sessions.filter((_, i) => i % 2 === 1);
    await waitFor(
      "every good pair kept alive",
      () => good.every((s) => backend.calls.some((c) => c.sessionId === s.sessionId && c.method === "ping" && c.status === undefined && c.at > stoppedAt)),
      20_000,
      200,
    );

    expect(new Set(unauthorized().map((e) => (e.type === "backend.unauthorized" ? e.sessionId : "")))).toEqual(new Set(sessions.map((_, i) => `s${i}`).filter((_, i) => i % 2 === 0)));
    expect(unauthorized()).toHaveLength(500);
    expect(events.filter((e) => e.type === "backend.breaker_opened")).toEqual([]);
    const redis = new Redis(redisUrl, { connectionName: `vmk-test@${prefix}` });
    cleanups.push(async () => redis.disconnect());
    expect(await redis.hget(`${prefix}:backend:mail`, "state")).not.toBe("open");
    const store = createSessionStore(redis, createKeys(prefix));
    const pairs = await store.listPairs();
    expect(pairs.filter((p) => p.status === "off" && p.offReason === "unauthorized")).toHaveLength(500);
    expect(pairs.filter((p) => p.status === "active")).toHaveLength(500);
    // Each revoked token was tried once: its pair stopped at the first 401.
    const metrics = (await get(`${workerUrl}/metrics`)).body;
    expect(sample(metrics, "keepalive_failure_count", { backend: "mail", reason: "unauthorized" })).toBe(500);
    expect(backend.calls.filter((c) => c.status === 401 && c.at > registeredAt)).toHaveLength(500);
  }, 120_000);

  it("key rotation under load: workers on [k2, k1], clients move to k2, k1 removed — no pair misses a keepalive", async () => {
    prefix = testPrefix("creds-rotation");
    const n = 200;
    const intervalMs = 2_000;
    const { backend, sessions } = await backendWithSessions(n);
    const [k1, k2] = [newKey("k1"), newKey("k2")];
    const config = { keepalive: { interval: `${intervalMs}ms`, timeout: "1s" }, backends: [{ id: "mail", url: backend.url, auth: "session" }] };
    const scheduler = program("scheduler", config, [k2, k1]);
    const oldWorker = program("worker", config, [k2, k1]);
    await Promise.all([waitForLog(scheduler, "scheduler started", 30_000), waitForLog(oldWorker, "worker started", 30_000)]);
    // The vMCP replicas still seal with k1.
    await register(vmcpClient([k1], "vmcp-old"), sessions);
    const from = Date.now() + intervalMs * 2;
    await new Promise((r) => setTimeout(r, intervalMs * 2));

    // The replicas restart on k2 and register their live sessions again (what their refresh does).
    await register(vmcpClient([k2], "vmcp-new"), sessions);
    const redis = new Redis(redisUrl, { connectionName: `vmk-test@${prefix}` });
    cleanups.push(async () => redis.disconnect());
    const store = createSessionStore(redis, createKeys(prefix));
    await waitFor("every pair sealed with k2", async () => (await store.listPairs()).every((p) => p.credentials?.keyId === "k2"), 20_000, 200);
    await new Promise((r) => setTimeout(r, intervalMs));

    // k1 leaves the workers' ring: a worker on [k2] takes over, then the old one stops.
    const newWorker = program("worker", config, [k2]);
    await waitForLog(newWorker, "worker started", 30_000);
    expect(await oldWorker.stop()).toBe(0);
    await new Promise((r) => setTimeout(r, intervalMs * 3));
    const to = Date.now() - intervalMs;

    const pairs = await store.listPairs();
    expect(pairs.filter((p) => p.status !== "active")).toEqual([]);
    expect(newWorker.output()).not.toContain("cannot be opened");
    expect(oldWorker.output()).not.toContain("cannot be opened");
    // Each pair's keepalives, all answered 200 by the backend with its user's token: no gap over
    // two intervals (one tick may land early, the next late, by up to its phase jitter).
    let worst = 0;
    for (const s of sessions) {
      const times = backend.calls.filter((c) => c.sessionId === s.sessionId && c.method === "ping").map((c) => c.at);
      expect(backend.calls.filter((c) => c.sessionId === s.sessionId && c.status === 401)).toEqual([]);
      const inWindow = [from, ...times.filter((t) => t >= from && t <= to), to];
      for (let i = 1; i < inWindow.length; i++) worst = Math.max(worst, inWindow[i]! - inWindow[i - 1]!);
    }
    process.stdout.write(`[rotation] ${n} pairs, longest gap between keepalives ${worst} ms (interval ${intervalMs} ms)\n`);
    expect(worst).toBeLessThan(intervalMs * 2);
  }, 120_000);
});
