import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createSessionStore } from "@vmcp-keepalive/scheduler/internal";
import { createKeys, createVmcpClient, type VmcpClient, type VmcpEvent } from "@vmcp-keepalive/shared";
import { flushPrefix, openBackendSession, sleep, startMcpTestBackend, testPrefix, waitFor, type McpTestBackend, type OpenedSession } from "@vmcp-keepalive/testkit";
import { startProgram, stopAll, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

/*
 * Session credentials end to end: real scheduler and worker programs, the real vMCP client sealing
 * each pair's token, and a real SDK backend that binds every session to the bearer token of its
 * initialize and answers 401 to any later request of the session without it.
 */
const redisUrl = inject("redisUrl");
const key = () => ({ id: `k${randomBytes(3).toString("hex")}`, key: randomBytes(32).toString("base64") });

describe("session credentials", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  let prefix = "";
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
    await flushPrefix(redisUrl, prefix);
  });

  /** A backend that binds each session to its token; returns it with helpers to open sessions. */
  async function boundBackend(options: { idleTtlMs?: number; jsonResponse?: boolean } = {}): Promise<McpTestBackend> {
    const backend = await startMcpTestBackend({ bindAuthorization: true, ...options });
    cleanups.push(() => backend.stop());
    return backend;
  }

  function start(config: Record<string, unknown>, ring: readonly { id: string; key: string }[]): { scheduler: RunningProcess; worker: RunningProcess } {
    const env = Object.fromEntries(ring.map((k, i) => [`VMK_TEST_KEY_${i}`, k.key]));
    const file = writeConfig({
      redis: { url: redisUrl, prefix },
      log: { level: "debug" },
      credentials: { keys: ring.map((k, i) => ({ id: k.id, key: `\${VMK_TEST_KEY_${i}}` })), ...((config["credentials"] as object | undefined) ?? {}) },
      ...Object.fromEntries(Object.entries(config).filter(([k]) => k !== "credentials")),
    });
    const scheduler = startProgram("scheduler", ["--config", file], env);
    const worker = startProgram("worker", ["--config", file], env);
    cleanups.push(async () => expect(await stopAll([scheduler, worker])).toEqual([0, 0]));
    return { scheduler, worker };
  }

  function client(ring: readonly { id: string; key: string }[], replicaId = "vmcp-1"): { client: VmcpClient; events: VmcpEvent[] } {
    const c = createVmcpClient({ redisUrl, prefix, replicaId, credentialKeys: ring, refreshIntervalMs: 0 });
    const events: VmcpEvent[] = [];
    c.onEvent((e) => void events.push(e));
    cleanups.push(() => c.close());
    return { client: c, events };
  }

  const bearer = (who: string) => `Bearer token-of-${who}`;
  const calls = (backend: McpTestBackend, s: OpenedSession, status?: number) => backend.calls.filter((c) => c.sessionId === s.sessionId && c.method === "ping" && c.status === status).length;

  it("keeps alive the sessions of a backend that authenticates every user, past 3x its idle timeout; a pair without credentials is off and the breaker stays closed", async () => {
    prefix = testPrefix("creds-bound");
    const k1 = key();
    const backend = await boundBackend({ idleTtlMs: 2_000 });
    const { worker } = start(
      { keepalive: { interval: "1s", timeout: "500ms" }, breaker: { failure_threshold: 1, min_failure_span: 0 }, backends: [{ id: "mail", url: backend.url, session_ttl: "2s", auth: "session" }] },
      [k1],
    );
    await waitForLog(worker, "worker started", 30_000);
    const { client: vmcp } = client([k1]);
    const users = ["ada", "bob", "cyd"];
    const sessions = await Promise.all(users.map((u) => openBackendSession(backend.url, { authorization: bearer(u) })));
    for (const [i, u] of users.entries()) {
      const s = sessions[i]!;
      const r = await vmcp.registerSession(`s-${u}`, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "mail", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion, credentials: { headers: { Authorization: bearer(u) } } }],
      });
      expect(r.ok).toBe(true);
    }
    // The control pair: a user's session registered without credentials.
    const control = await openBackendSession(backend.url, { authorization: bearer("dee") });
    await vmcp.registerSession("s-dee", { sessionTtlMs: 600_000, backends: [{ backendId: "mail", backendSessionId: control.sessionId, protocolVersion: control.protocolVersion }] });

    const startedAt = Date.now();
    const redis = new Redis(redisUrl, { connectionName: `vmk-test@${prefix}` });
    cleanups.push(async () => redis.disconnect());
    const store = createSessionStore(redis, createKeys(prefix));
    await waitFor("control pair off", async () => (await store.readPair("s-dee", "mail"))?.offReason === "no_credentials", 10_000);
    // 3 x the idle timeout, and then some: every bound session is still there.
    await new Promise((r) => setTimeout(r, 7_000 - (Date.now() - startedAt)));
    for (const s of sessions) {
      expect(backend.hasSession(s.sessionId), `session ${s.sessionId} kept alive`).toBe(true);
      expect(calls(backend, s)).toBeGreaterThanOrEqual(4);
      expect(calls(backend, s, 401)).toBe(0);
    }
    // The control pair got no call; its backend session idled out, and the breaker never counted.
    expect(backend.calls.filter((c) => c.sessionId === control.sessionId && c.method === "ping")).toEqual([]);
    expect(backend.hasSession(control.sessionId)).toBe(false);
    expect(await store.readPair("s-dee", "mail")).toMatchObject({ status: "off", offReason: "no_credentials" });
    expect(await redis.hget(`${prefix}:backend:mail`, "state")).not.toBe("open");
    expect((await store.readPair("s-ada", "mail"))?.credentials).toMatchObject({ keyId: k1.id });
  }, 60_000);

  it("credentials that expire: no call after expiresAt, one credentials_expired event; a touch with new ones brings keepalives back", async () => {
    prefix = testPrefix("creds-expiry");
    const k1 = key();
    const backend = await boundBackend();
    const { worker } = start({ keepalive: { interval: "1s", timeout: "300ms" }, credentials: { refresh_before: "2s" }, backends: [{ id: "mail", url: backend.url, auth: "session" }] }, [k1]);
    await waitForLog(worker, "worker started", 30_000);
    const { client: vmcp, events } = client([k1]);
    const s = await openBackendSession(backend.url, { authorization: bearer("eve") });
    const expiresAt = Date.now() + 4_000;
    await vmcp.registerSession("s-eve", {
      sessionTtlMs: 600_000,
      backends: [{ backendId: "mail", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion, credentials: { headers: { Authorization: bearer("eve") }, expiresAt } }],
    });
    await waitFor("a keepalive with the credentials", () => calls(backend, s) >= 1, 10_000);
    await waitFor("credentials_expired event", () => events.some((e) => e.type === "backend.credentials_expired"), 15_000);
    // Three more intervals: no call was made with credentials past their expiry, and one event.
    await new Promise((r) => setTimeout(r, 3_000));
    const late = backend.calls.filter((c) => c.sessionId === s.sessionId && c.at > expiresAt);
    expect(late).toEqual([]);
    expect(events.filter((e) => e.type === "backend.credentials_expired")).toEqual([expect.objectContaining({ sessionId: "s-eve", backendId: "mail", expiresAt: new Date(expiresAt).toISOString() })]);
    expect(events.filter((e) => e.type === "backend.credentials_expiring")).toHaveLength(1);
    expect(worker.logs().some((l) => l["msg"] === "keepalive skipped" && l["reason"] === "credentials_expired")).toBe(true);

    // New credentials with the user's next request: keepalives come back within one interval.
    const renewedAt = Date.now();
    vmcp.touch("s-eve", { backendIds: [], credentials: { mail: { headers: { Authorization: bearer("eve") }, expiresAt: Date.now() + 600_000 } } });
    await waitFor("a keepalive after the renewal", () => backend.calls.some((c) => c.sessionId === s.sessionId && c.method === "ping" && c.at > renewedAt), 3_000, 50);
  }, 60_000);

  it("one-step key rotation: a pair sealed with a key the workers lack waits, on, and is kept alive once they have it; a ciphertext copied onto another pair puts only that pair off", async () => {
    prefix = testPrefix("creds-refused");
    const k1 = key();
    const rotated = key();
    const backend = await boundBackend();
    const keepalive = { interval: "1s", timeout: "300ms" };
    const backends = [{ id: "mail", url: backend.url, auth: "session" }];
    const { worker } = start({ keepalive, backends }, [k1]);
    await waitForLog(worker, "worker started", 30_000);
    const { client: vmcp } = client([k1]);
    // A vMCP replica already restarted with the new key first: it seals with a key the workers lack.
    const { client: rotatedVmcp } = client([rotated, k1], "vmcp-2");
    const open = async (u: string) => openBackendSession(backend.url, { authorization: bearer(u) });
    const [a, b, c] = await Promise.all([open("ann"), open("ben"), open("cat")]);
    const reg = (v: VmcpClient, sid: string, s: OpenedSession, u: string) =>
      v.registerSession(sid, {
        sessionTtlMs: 600_000,
        backends: [{ backendId: "mail", backendSessionId: s.sessionId, protocolVersion: s.protocolVersion, credentials: { headers: { Authorization: bearer(u) } } }],
      });
    await reg(vmcp, "s-ann", a, "ann");
    await reg(vmcp, "s-ben", b, "ben");
    await reg(rotatedVmcp, "s-cat", c, "cat");

    const redis = new Redis(redisUrl, { connectionName: `vmk-test@${prefix}` });
    cleanups.push(async () => redis.disconnect());
    const store = createSessionStore(redis, createKeys(prefix));
    await waitFor("ann and ben kept alive", () => calls(backend, a) >= 1 && calls(backend, b) >= 1, 10_000);
    const waits = () => worker.logs().filter((l) => l["sessionId"] === "s-cat" && l["why"] === "unknown_key");
    await waitFor("cat waits for the key", () => waits().length === 1, 10_000);
    // Three more intervals: cat is skipped each tick, stays on, and the error is said once.
    await sleep(3_500);
    expect(waits()).toHaveLength(1);
    expect(waits()[0]).toMatchObject({ level: "error", keyId: rotated.id });
    expect(JSON.stringify(worker.logs())).not.toContain(rotated.key);
    expect(await store.readPair("s-cat", "mail")).toMatchObject({ status: "active" });
    expect(await redis.hget(`${prefix}:pair:s-cat:mail`, "last")).toBe("skipped:credentials_unknown_key");
    expect(calls(backend, c)).toBe(0);

    // Ann's envelope copied onto Ben's pair (its own credentials sequence kept): it does not open.
    const annSealed = await redis.hget(`${prefix}:pair:s-ann:mail`, "cred");
    await redis.hset(`${prefix}:pair:s-ben:mail`, "cred", annSealed!);
    await waitFor("ben off", async () => (await store.readPair("s-ben", "mail"))?.offReason === "credentials_undecryptable", 10_000);
    const copied = worker.logs().find((l) => l["sessionId"] === "s-ben" && l["why"] === "undecryptable");
    expect(copied).toMatchObject({ keyId: k1.id });
    // Ben's session never received Ann's token, and Ann is kept alive throughout.
    expect(calls(backend, b, 401)).toBe(0);
    const annBefore = calls(backend, a);
    await waitFor("ann still kept alive", () => calls(backend, a) >= annBefore + 2, 10_000);

    // The workers get the new key (the shared Secret changed, the worker restarted): cat is kept
    // alive with the credentials it already has — no new ones sent, no pair off, no 401.
    expect(await stopAll([worker])).toEqual([0]);
    const env = { VMK_TEST_KEY_0: rotated.key, VMK_TEST_KEY_1: k1.key };
    const file = writeConfig({
      redis: { url: redisUrl, prefix },
      log: { level: "debug" },
      credentials: {
        keys: [
          { id: rotated.id, key: "${VMK_TEST_KEY_0}" },
          { id: k1.id, key: "${VMK_TEST_KEY_1}" },
        ],
      },
      keepalive,
      backends,
    });
    const rotatedWorker = startProgram("worker", ["--config", file], env);
    cleanups.push(async () => expect(await stopAll([rotatedWorker])).toEqual([0]));
    await waitFor("cat kept alive by a worker with the key", () => calls(backend, c) >= 2, 15_000);
    expect(calls(backend, c, 401)).toBe(0);
    expect(await store.readPair("s-cat", "mail")).toMatchObject({ status: "active" });
    expect(await store.readPair("s-ann", "mail")).toMatchObject({ status: "active" });

    // New credentials for Ben bring him back at his next interval.
    const sent = Date.now();
    expect((await vmcp.updateCredentials("s-ben", "mail", { headers: { Authorization: bearer("ben") } })).ok).toBe(true);
    await waitFor("ben back", () => backend.calls.some((x) => x.sessionId === b.sessionId && x.method === "ping" && x.at > sent && x.status === undefined), 5_000, 50);
    expect(await store.readPair("s-ben", "mail")).toMatchObject({ status: "active" });
  }, 60_000);
});
