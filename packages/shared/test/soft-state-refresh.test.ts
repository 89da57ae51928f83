import { afterEach, describe, expect, it } from "vitest";
import { sleep, waitFor } from "@vmcp-keepalive/testkit";
import { createCredentialSealer, type SessionOptions as RegisterOptions } from "../src/client/session-credentials.js";
import { createSoftStateRefresh, type SoftStateRefresh } from "../src/client/soft-state-refresh.js";
import { openSessionsQueue, type SessionsQueue } from "./helpers/sessions-queue.js";

const registration = (backendSessionId: string, sessionTtlMs = 60_000): RegisterOptions => ({
  sessionTtlMs,
  backends: [{ backendId: "b1", backendSessionId, protocolVersion: "2025-06-18" }],
});

describe("soft-state refresh", () => {
  let q: SessionsQueue;
  let refresh: SoftStateRefresh;
  const refreshedBefore: string[] = [];
  const open = (intervalFor: (o: RegisterOptions) => number) => {
    q = openSessionsQueue("refresh");
    refreshedBefore.length = 0;
    refresh = createSoftStateRefresh({
      send: (sessionId, o) => q.publisher.register(sessionId, createCredentialSealer(undefined).registration(sessionId, o)),
      intervalFor,
      onRefresh: (sessionId) => refreshedBefore.push(sessionId),
      random: () => 0.5,
    });
    return refresh;
  };
  afterEach(async () => {
    refresh.stop();
    await q.close();
  });

  it("registers every live session again each interval, with a new sequence and the same backends", async () => {
    const r = open(() => 200);
    r.remember("s1", registration("bs-1"));
    r.remember("s2", registration("bs-2"));
    await waitFor("two refreshes of each session", async () => (await q.messages("s1")).length >= 2 && (await q.messages("s2")).length >= 2, 5_000);
    const s1 = await q.messages("s1");
    expect(s1.every((m) => m.type === "session.registered")).toBe(true);
    expect(s1[1]!.sequence).toBeGreaterThan(s1[0]!.sequence);
    expect(s1[1]!.backends).toEqual(registration("bs-1").backends);
    expect(refreshedBefore).toContain("s1");
  });

  it("carries a re-initialized backend session in the refreshes after it", async () => {
    const r = open(() => 200);
    r.remember("s1", registration("old"));
    r.updateBackend("s1", "b1", { backendSessionId: "new", protocolVersion: "2025-11-25" });
    await waitFor("a refresh", async () => (await q.messages("s1")).length >= 1, 5_000);
    expect((await q.messages("s1"))[0]!.backends).toEqual([{ backendId: "b1", backendSessionId: "new", protocolVersion: "2025-11-25" }]);
  });

  it("sends nothing for a forgotten session, after stop, or when the interval is 0", async () => {
    const r = open((o) => (o.sessionTtlMs === 1 ? 0 : 200));
    r.remember("ended", registration("bs"));
    r.forget("ended");
    r.remember("off", registration("bs", 1));
    r.remember("stopped", registration("bs"));
    r.stop();
    r.remember("after-stop", registration("bs"));
    await sleep(700);
    expect(await q.messages()).toEqual([]);
    expect(refreshedBefore).toEqual([]);
  });
});
