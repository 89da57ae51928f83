import { describe, expect, inject, it } from "vitest";
import { schedulerId } from "@vmcp-keepalive/shared";
import { openBackendSession, waitFor } from "@vmcp-keepalive/testkit";
import { onePairFixture } from "./helpers/one-pair.js";

const redisUrl = inject("redisUrl");

// The full loop with real programs: backend session lost → worker marks the pair expired and
// removes its job scheduler → the vMCP re-initializes through the client → the scheduler restores
// the job scheduler → keepalives continue on the new backend session.
describe("re-initializing an expired pair", () => {
  const start = onePairFixture(redisUrl);

  it("restores keepalive on the new backend session after a 404", async () => {
    const { backend, queue, store, client, session: old } = await start("reinit", { keepalive: { interval: "1s", timeout: "500ms" } }, { lockTimeoutMs: 2_500 });
    await waitFor("a keepalive on the first session", () => backend.count("ping", old.sessionId) >= 1, 20_000);

    // The backend drops the session (restart, idle TTL...): the next keepalive gets 404.
    const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": old.sessionId, "mcp-protocol-version": old.protocolVersion } });
    expect(del.status).toBe(200);
    await waitFor("pair expired", async () => (await store.readPair("s1", "b1"))?.status === "expired", 20_000);
    await waitFor("job scheduler removed", async () => !(await queue.getJobScheduler(schedulerId("s1", "b1"))), 20_000);

    let fresh = old;
    const result = await client.reinitializeBackend("s1", "b1", async () => {
      fresh = await openBackendSession(backend.url);
      return { backendSessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion };
    });
    expect(result).toMatchObject({ lock: "held", state: "written", schedulerRestoreRequested: true });
    await waitFor("job scheduler restored", () => queue.getJobScheduler(schedulerId("s1", "b1")), 20_000);
    await waitFor("keepalives on the new session", () => backend.count("ping", fresh.sessionId) >= 2, 20_000);
    expect(await store.readPair("s1", "b1")).toMatchObject({ status: "active", backendSessionId: fresh.sessionId, lastOutcome: "success" });
  }, 90_000);
});
