import { describe, expect, inject, it } from "vitest";
import { schedulerId } from "@vmcp-keepalive/shared";
import { openBackendSession, waitFor } from "@vmcp-keepalive/testkit";
import { onePairFixture } from "./helpers/one-pair.js";
import { waitForLog } from "./helpers/processes.js";

const redisUrl = inject("redisUrl");

// The pair lock has a TTL, so a call can outlive it. Every worker write is fenced on the pair's
// epoch: a worker whose lock expired mid-call cannot overwrite what a re-initialize wrote meanwhile.
describe("epoch fencing when a worker's lock expires mid-call", () => {
  const start = onePairFixture(redisUrl);

  it("a slow keepalive that outlives its 300 ms lock gets 404 from the replaced session; its outcome is fenced out and the pair stays active on the new session", async () => {
    // lock.ttl far below the backend's 1.5 s answer: the lock expires while the call is in flight.
    const { backend, worker, redis, queue, store, client, session: old } = await start("fence", { lock: { ttl: "300ms" }, keepalive: { interval: "4s", timeout: "3s" } }, { lockTimeoutMs: 5_000 });
    await waitFor("pair registered", () => store.readPair("s1", "b1"), 20_000);
    const registered = (await store.readPair("s1", "b1"))!;

    // The backend turns slow (each answer after 1.5 s; the backend records a call when it
    // answers). A keepalive is in flight once the worker holds the pair lock.
    backend.delayMs = 1_500;
    const pingsBefore = backend.count("ping", old.sessionId);
    const lockKey = store.keys.pairLock("s1", "b1");
    await waitFor("a worker holding the pair lock (keepalive in flight)", async () => (await redis.exists(lockKey)) === 1, 20_000, 5);
    const inFlightSince = Date.now();

    // The vMCP re-initializes meanwhile: it gets the lock once the worker's 300 ms TTL ran out,
    // terminates the old backend session and opens a new one.
    let fresh = old;
    const result = await client.reinitializeBackend("s1", "b1", async () => {
      backend.delayMs = 0;
      const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": old.sessionId, "mcp-protocol-version": old.protocolVersion } });
      expect(del.status).toBe(200);
      fresh = await openBackendSession(backend.url);
      return { backendSessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion };
    });
    const reinitTook = Date.now() - inFlightSince;
    expect(result).toMatchObject({ lock: "held", state: "written", epoch: registered.epoch + 1 });
    const written = (await store.readPair("s1", "b1"))!;
    expect(written).toMatchObject({ backendSessionId: fresh.sessionId, status: "active", epoch: registered.epoch + 1 });

    // The slow call now ends with 404 (its session was terminated under it)...
    await waitFor("the late 404 on the old session", () => backend.calls.find((c) => c.method === "ping" && c.sessionId === old.sessionId && c.status === 404), 20_000, 10);
    expect(backend.count("ping", old.sessionId)).toBe(pingsBefore + 1);
    const fenced = await waitForLog(worker, "keepalive outcome not recorded: the pair moved on", 20_000);
    expect(fenced).toMatchObject({ reason: "session_not_found", why: "fenced" });
    // ...and the worker could not record it: no `expired`, no failure fields, job scheduler kept.
    await new Promise((r) => setTimeout(r, 300));
    expect(await store.readPair("s1", "b1")).toEqual(written);
    expect(await queue.getJobScheduler(schedulerId("s1", "b1"))).toBeTruthy();
    console.log(`fencing: re-initialize returned ${reinitTook} ms after the worker took the lock for its slow ping (worker lock TTL 300 ms, backend answer 1500 ms); the late 404 was fenced out`);

    // Keepalive carries on, on the new session.
    await waitFor("a successful keepalive on the new session", async () => (await store.readPair("s1", "b1"))?.lastOutcome === "success", 20_000);
    expect(backend.count("ping", fresh.sessionId)).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it("a slow 404 whose lock expired marks the pair expired but leaves the job scheduler to the next tick, which removes it under a fresh lock", async () => {
    const { backend, worker, queue, store, session: old } = await start("fence404", { lock: { ttl: "300ms" }, keepalive: { interval: "3s", timeout: "2500ms" } });
    await waitFor("job scheduler", () => queue.getJobScheduler(schedulerId("s1", "b1")), 20_000);

    // The backend answers after 1.5 s and the session is gone: the next keepalive gets a late 404.
    backend.delayMs = 1_500;
    await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": old.sessionId, "mcp-protocol-version": old.protocolVersion } });
    await waitFor("pair expired", async () => (await store.readPair("s1", "b1"))?.status === "expired", 20_000);
    await waitForLog(worker, "pair lock expired during the call; job scheduler left for the next tick to remove", 10_000);
    await waitFor("job scheduler removed by the next tick", async () => !(await queue.getJobScheduler(schedulerId("s1", "b1"))), 20_000);
    expect(backend.calls.filter((c) => c.method === "ping" && c.status === 404).length).toBe(1);
    expect((await store.readPair("s1", "b1"))?.status).toBe("expired");
  }, 90_000);
});
