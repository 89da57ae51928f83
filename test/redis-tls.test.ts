import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeRedis, createKeys, createRedis, createVmcpClient, keyLayout, type RedisTarget, type ReinitializeResult, type ReinitializedBackend } from "@vmcp-keepalive/shared";
import {
  makeTestPki,
  openBackendSession,
  startMcpTestBackend,
  startRedisCluster,
  startRedisSentinel,
  startTlsRedis,
  testPrefix,
  tlsClientOptions,
  waitFor,
  type McpTestBackend,
  type TestPki,
  type TlsRedis,
} from "@vmcp-keepalive/testkit";
import { buildGoDriver, startGoDriver } from "./helpers/go-driver.js";
import { httpUrlOf, runCli, startProgram, stopAll, waitForLog, writeConfig } from "./helpers/processes.js";

/*
 * Redis over TLS with a private CA made here by openssl, on redis-servers that speak TLS only (no
 * plain port) and require a client certificate: the programs, the TypeScript client and the Go
 * client work end to end on one node, through Sentinel (Sentinels and data nodes on TLS) and on a
 * Redis Cluster (cluster bus and replication on TLS too); and the three ways a TLS set-up goes wrong — a CA that did not sign
 * the server's certificate, a certificate for another name, a wrong password — each come out as
 * one line naming the cause (log, /readyz, status CLI), with the process up and connecting once
 * the cause is fixed on the server.
 */
let pki: TestPki;
let go: { binary: string; remove(): void };
beforeAll(() => {
  pki = makeTestPki();
  go = buildGoDriver();
}, 200_000);
afterAll(() => {
  go?.remove();
  pki?.remove();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function tlsRedis(password?: string): Promise<TlsRedis> {
  const server = await startTlsRedis({ pki, ...(password ? { password } : {}) });
  cleanups.push(() => server.stop());
  return server;
}

/** An admin connection to a TLS server (opened before its certificate or password changes). */
async function admin(server: TlsRedis, password?: string): Promise<Redis> {
  const redis = new Redis(server.port, "127.0.0.1", { tls: { ...server.tls }, ...(password ? { password } : {}) });
  cleanups.push(async () => redis.disconnect());
  await redis.ping();
  return redis;
}

const tlsFiles = () => ({ ca_file: pki.ca.path, cert_file: pki.clientCert.path, key_file: pki.clientKey.path });

/** Where the whole path runs: the programs' `redis` section (no prefix, no tls), the TypeScript client's target and the Go driver's Redis variables. */
interface TlsDeployment {
  readonly label: string;
  readonly redisConfig: Record<string, unknown>;
  readonly target: RedisTarget;
  readonly goEnv: Record<string, string>;
}

/**
 * The scheduler, the worker, a TypeScript vMCP and a Go vMCP on `d`, all with the test CA and the
 * client certificate: each registers a session, it is kept alive, the backend drops it (404 on the
 * next keepalive), the event reaches its vMCP, which re-initializes the backend under the pair
 * lock; the new backend session is kept alive; both end and their pairs go.
 */
async function wholePath(d: TlsDeployment): Promise<void> {
  const backend: McpTestBackend = await startMcpTestBackend();
  cleanups.push(() => backend.stop());
  const prefix = testPrefix(d.label);
  const config = writeConfig({
    redis: { ...d.redisConfig, prefix, tls: tlsFiles() },
    keepalive: { interval: "1s", timeout: "500ms" },
    backends: [{ id: "b1", url: backend.url }],
  });
  const scheduler = startProgram("scheduler", ["--config", config]);
  const worker = startProgram("worker", ["--config", config]);
  cleanups.push(async () => expect(await stopAll([scheduler, worker])).toEqual([0, 0]));
  await waitForLog(scheduler, "scheduler started", 30_000);
  await waitForLog(worker, "worker started", 30_000);

  // The TypeScript vMCP, with the same CA and client certificate.
  const tls = tlsClientOptions(pki);
  const reinitialized: ReinitializeResult<ReinitializedBackend>[] = [];
  const vmcp = createVmcpClient({ redis: d.target, prefix, replicaId: "ts-1", tls, refreshIntervalMs: 0 });
  cleanups.push(() => vmcp.close());
  vmcp.onEvent(async (e) => {
    if (e.type !== "backend.session_expired" || e.sessionId !== "s-ts") return;
    reinitialized.push(
      await vmcp.reinitializeBackend(e.sessionId, e.backendId, async () => {
        const s = await openBackendSession(backend.url);
        return { backendSessionId: s.sessionId, protocolVersion: s.protocolVersion };
      }),
    );
  });
  const ts = await openBackendSession(backend.url);
  expect((await vmcp.registerSession("s-ts", { sessionTtlMs: 600_000, backends: [{ backendId: "b1", backendSessionId: ts.sessionId, protocolVersion: ts.protocolVersion }] })).ok).toBe(true);

  // The Go vMCP, with a tls.Config of the same files.
  const driver = startGoDriver(go.binary, {
    ...d.goEnv,
    VMK_E2E_PREFIX: prefix,
    VMK_E2E_BACKEND: backend.url,
    VMK_E2E_SESSIONS: "s-go",
    VMK_E2E_TLS_CA: pki.ca.path,
    VMK_E2E_TLS_CERT: pki.clientCert.path,
    VMK_E2E_TLS_KEY: pki.clientKey.path,
  });
  cleanups.push(async () => expect(await driver.stop()).toBe(0));
  const goSession = String(((await driver.line("registered")).sessions as Record<string, string>)["s-go"]);

  await waitFor("both sessions kept alive", () => backend.count("ping", ts.sessionId) >= 2 && backend.count("ping", goSession) >= 2, 15_000);

  // The backend drops both sessions: 404 on the next keepalive, an event to each vMCP, a
  // re-initialize under the pair lock, keepalives on the new backend sessions.
  for (const sid of [ts.sessionId, goSession]) {
    const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": sid, "mcp-protocol-version": ts.protocolVersion } });
    expect(del.status).toBe(200);
  }
  await waitFor("the TypeScript vMCP re-initialized", () => reinitialized.length === 1, 15_000);
  expect(reinitialized[0]).toMatchObject({ lock: "held", state: "written" });
  const goReinit = await driver.line("reinitialized", 15_000);
  expect(goReinit).toMatchObject({ sessionId: "s-go", lock: "held", state: "written" });
  const freshTs = reinitialized[0]!.value.backendSessionId;
  const freshGo = String(goReinit["new"]);
  await waitFor("the new backend sessions kept alive", () => backend.count("ping", freshTs) >= 1 && backend.count("ping", freshGo) >= 1, 15_000);

  // Both end: their pairs go.
  expect((await vmcp.endSession("s-ts")).ok).toBe(true);
  await driver.request("end s-go", "ended");
  const redis = createRedis({ ...d.target, tls }, "client", `vmk-test-tls@${prefix}`);
  cleanups.push(() => closeRedis(redis));
  const keys = createKeys(prefix, keyLayout(d.target.mode === "cluster"));
  // One key a command: on a Cluster the two pairs may be in different slots.
  const pairsLeft = async () => (await Promise.all(["s-ts", "s-go"].map((id) => redis.exists(keys.pair(id, "b1"))))).reduce((a, b) => a + b, 0);
  await waitFor("both pairs deleted", async () => (await pairsLeft()) === 0, 10_000);
  for (const p of [scheduler, worker]) expect(p.child.exitCode).toBeNull();
}

describe("Redis over TLS with a private CA", () => {
  it("the scheduler, the worker, the TypeScript client and the Go client register, keep alive, hear of a 404, re-initialize under the pair lock and end", async () => {
    const server = await tlsRedis("tls-secret");
    await wholePath({ label: "tls", redisConfig: { url: server.url }, target: { mode: "standalone", url: server.url }, goEnv: { VMK_E2E_REDIS: server.url } });
  }, 120_000);

  it("the same through Sentinel, the Sentinels and the data nodes TLS-only, each with its own password", async () => {
    const sentinel = await startRedisSentinel({ tls: { pki }, password: "data-secret", sentinelPassword: "sentinel-secret" });
    cleanups.push(() => sentinel.stop());
    // The URL gives the data nodes' password (its host is not used).
    const url = "rediss://:data-secret@127.0.0.1";
    await wholePath({
      label: "tlssnt",
      redisConfig: { mode: "sentinel", sentinels: [...sentinel.sentinels], sentinel_name: sentinel.masterName, url, sentinel_password: "sentinel-secret" },
      target: { mode: "sentinel", sentinels: [...sentinel.sentinels], name: sentinel.masterName, url, sentinelPassword: "sentinel-secret" },
      goEnv: {
        VMK_E2E_SENTINELS: sentinel.sentinels.join(","),
        VMK_E2E_MASTER_NAME: sentinel.masterName,
        VMK_E2E_MASTER_PASSWORD: "data-secret",
        VMK_E2E_SENTINEL_PASSWORD: "sentinel-secret",
      },
    });
  }, 120_000);

  it("the same on a Redis Cluster whose nodes, cluster bus and replication are TLS-only", async () => {
    const cluster = await startRedisCluster({ tls: { pki } });
    cleanups.push(() => cluster.stop());
    await wholePath({
      label: "tlscl",
      redisConfig: { mode: "cluster", nodes: [...cluster.nodes] },
      target: { mode: "cluster", nodes: [...cluster.nodes] },
      goEnv: { VMK_E2E_CLUSTER_NODES: cluster.nodes.join(",") },
    });
  }, 120_000);

  const mistakes = [
    {
      name: "a CA that did not sign the server's certificate",
      tls: () => ({ ...tlsFiles(), ca_file: pki.otherCa.path }),
      password: undefined,
      cause: /TLS: the server's certificate is not signed by a CA this process trusts/,
      // The server now presents a certificate the other CA signed.
      fix: (r: Redis) => r.config("SET", "tls-cert-file", pki.otherCaServerCert.path, "tls-key-file", pki.otherCaServerKey.path),
    },
    {
      name: "a certificate for another name",
      tls: () => ({ ...tlsFiles(), servername: "other.test" }),
      password: undefined,
      cause: /TLS: the server's certificate is not for the name connected to/,
      fix: (r: Redis) => r.config("SET", "tls-cert-file", pki.otherNameCert.path, "tls-key-file", pki.otherNameKey.path),
    },
    {
      name: "a wrong password",
      tls: tlsFiles,
      password: "wrong",
      cause: /authentication failed: wrong user name or password/,
      fix: (r: Redis) => r.config("SET", "requirepass", "wrong"),
    },
  ];

  for (const mistake of mistakes) {
    it(`${mistake.name}: one line naming the cause in the log, in /readyz and from the status CLI; the scheduler stays up and connects once it is fixed`, async () => {
      const server = await tlsRedis("right");
      const adminConn = await admin(server, "right");
      const prefix = testPrefix("tlsbad");
      const url = `rediss://:${mistake.password ?? "right"}@127.0.0.1:${server.port}`;
      const config = writeConfig({ redis: { url, prefix, tls: mistake.tls() }, keepalive: { interval: "1s", timeout: "500ms" }, backends: [] });
      const scheduler = startProgram("scheduler", ["--config", config]);
      cleanups.push(async () => expect(await stopAll([scheduler])).toEqual([0]));
      const base = await httpUrlOf(scheduler);

      const causeLines = () => scheduler.logs().filter((l) => mistake.cause.test(String(l["msg"] ?? "")));
      await waitFor("the cause in the log", () => causeLines().length >= 1, 10_000);
      const readyz = await fetch(`${base}/readyz`);
      expect(readyz.status).toBe(503);
      const body = (await readyz.json()) as { causes?: Record<string, string> };
      expect(body.causes?.["main Redis"]).toMatch(mistake.cause);
      const cli = await runCli(["status", "--config", config]);
      expect(cli.code).not.toBe(0);
      expect(cli.stderr.trim().split("\n")).toHaveLength(1);
      expect(cli.stderr).toMatch(mistake.cause);
      // Retries go on, the line is not repeated: one line per cause, not one per attempt, and no stack.
      await new Promise((r) => setTimeout(r, 2_000));
      expect(causeLines()).toHaveLength(1);
      expect(JSON.stringify(scheduler.logs())).not.toMatch(/\n\s+at /);

      await mistake.fix(adminConn);
      await waitForLog(scheduler, "scheduler started", 20_000);
      await waitFor("ready once fixed", async () => (await fetch(`${base}/readyz`)).status === 200, 10_000);
      expect(scheduler.logs().some((l) => l["msg"] === "main Redis: connected")).toBe(true);
      const fixed = await runCli(["status", "--config", config]);
      expect(fixed.code).toBe(0);
    }, 60_000);
  }
});
