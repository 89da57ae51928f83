import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys } from "@vmcp-keepalive/shared";
import { flushPrefix, sleep, startMcpTestBackend, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { buildGoDriver, goOffline, startGoDriver } from "./helpers/go-driver.js";
import { startSchedulerAndWorker, stopAll, writeConfig } from "./helpers/processes.js";

/**
 * The Go client in clients/go, built offline with Go 1.19 against Debian's redigo and redisc
 * (clients/go/go-offline.sh): its own tests (key names, sealing and messages checked against the
 * TypeScript implementation, the lock and the re-initialize script against redis-server), and a
 * Go vMCP against the real scheduler and worker and an SDK backend — through the Redis Streams
 * contract only, no BullMQ on the Go side. Soft state and failovers: go-client-flushall.test.ts
 * and go-client-failover.test.ts.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe("Go client (clients/go)", () => {
  it("passes its own tests twice, through redigo and through an adapter that hands every reply over in go-redis's shapes: key names, sealing, every message and event type of the contract, soft state, lock and re-initialize against redis-server", () => {
    for (const shape of ["redigo", "go-redis"]) {
      const r = goOffline(["test", "-count=1", "./..."], 300_000, shape === "go-redis" ? { VMK_GO_REPLY_SHAPE: "go-redis" } : {});
      if (r.status !== 0) console.log(`replies in ${shape}'s shapes:\n${r.output}`);
      expect(r.status, `the suite through ${shape}`).toBe(0);
      expect(r.output).toMatch(/^ok\s+github\.com\/vmcp-keepalive\/clients\/go\s/m);
    }
    const vet = goOffline(["vet", "./..."], 120_000);
    expect(vet.output).toBe("");
    expect(vet.status).toBe(0);
    const fmt = spawnSync("/usr/lib/go-1.19/bin/gofmt", ["-l", join(ROOT, "clients/go")], { encoding: "utf8" });
    expect(fmt.stdout, "files gofmt would change").toBe("");
  }, 620_000);

  it("keeps stream-registered sessions of a backend that authenticates every user alive with their sealed tokens, re-initializes an expired backend under the pair lock, and stops an ended session's keepalives", async () => {
    const { binary, remove } = buildGoDriver();
    cleanups.push(async () => remove());

    const prefix = testPrefix("goe2e");
    // Drops sessions idle for 3 s: only keepalives (every second) keep a backend session. Binds
    // each session to the bearer token of its initialize: a keepalive without it gets 401.
    const backend = await startMcpTestBackend({ idleTtlMs: 3_000, bindAuthorization: true });
    const credentialKey = { id: "k1", key: randomBytes(32).toString("base64") };
    cleanups.push(
      () => flushPrefix(url, prefix),
      () => backend.stop(),
    );
    const config = writeConfig({
      redis: { url, prefix },
      keepalive: { interval: "1s", timeout: "800ms" },
      log: { level: "info" },
      credentials: { keys: [credentialKey] },
      backends: [{ id: "b1", url: backend.url, auth: "session" }],
    });
    const { scheduler, worker } = await startSchedulerAndWorker(config);
    cleanups.push(async () => expect(await stopAll([scheduler, worker])).toEqual([0, 0]));
    const redis = new Redis(url);
    cleanups.push(() => redis.quit());
    const keys = createKeys(prefix);

    const driver = startGoDriver(binary, {
      VMK_E2E_REDIS: url,
      VMK_E2E_PREFIX: prefix,
      VMK_E2E_BACKEND: backend.url,
      VMK_E2E_SESSIONS: "g1,g2",
      VMK_E2E_CREDENTIALS_KEY: `${credentialKey.id}:${credentialKey.key}`,
    });
    cleanups.push(async () => {
      const code = await driver.stop();
      if (code !== 0) console.log(driver.stderr());
      expect(code).toBe(0);
    });
    const registered = (await driver.line("registered")).sessions as Record<string, string>;
    const g1 = registered["g1"]!;
    const g2 = registered["g2"]!;

    // Kept alive: pinged every second, and still there after the backend's 3 s idle TTL.
    await waitFor("keepalives on both sessions", () => backend.count("ping", g1) >= 4 && backend.count("ping", g2) >= 4, 30_000);
    expect(backend.hasSession(g1) && backend.hasSession(g2)).toBe(true);
    expect(backend.calls.filter((c) => c.status === 401)).toEqual([]);
    expect(await redis.hget(keys.pair("g1", "b1"), "cred")).toContain('"kid":"k1"');
    // The ingress stream is drained: applied entries are acknowledged and deleted.
    await waitFor("ingress stream empty", async () => (await redis.xlen(`${prefix}:session-messages`)) === 0, 10_000);

    // The backend drops g1's session: the next keepalive gets 404, the worker adds
    // backend.session_expired to the event stream, and the Go client re-initializes b1 of g1.
    const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": g1, "mcp-protocol-version": "2025-06-18", authorization: "Bearer token-of-g1" } });
    expect(del.status).toBe(200);
    const reinit = await driver.line("reinitialized", 30_000);
    expect(reinit).toMatchObject({ sessionId: "g1", old: g1, lock: "held", state: "written", restore: true });
    const fresh = String(reinit["new"]);
    expect(fresh).not.toBe(g1);
    await waitFor("keepalives on the new backend session", () => backend.count("ping", fresh) >= 3, 30_000);
    expect(await redis.hget(keys.pair("g1", "b1"), "bsid")).toBe(fresh);
    expect(backend.hasSession(fresh)).toBe(true);

    // An ended session gets no more keepalives.
    driver.send("end g2");
    await driver.line("ended");
    await waitFor("g2's pair deleted", async () => (await redis.exists(keys.pair("g2", "b1"))) === 0, 15_000);
    await sleep(1_500); // a tick already under way when the pair went
    const pingsAtEnd = backend.count("ping", g2);
    const freshAtEnd = backend.count("ping", fresh);
    await sleep(3_500);
    expect(backend.count("ping", g2)).toBe(pingsAtEnd);
    expect(backend.count("ping", fresh)).toBeGreaterThan(freshAtEnd);
  }, 180_000);
});
