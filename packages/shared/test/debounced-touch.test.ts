import { afterEach, describe, expect, it } from "vitest";
import { sleep, waitFor } from "@vmcp-keepalive/testkit";
import { createDebouncedTouch, type DebouncedTouch } from "../src/client/debounced-touch.js";
import { openSessionsQueue, type SessionsQueue } from "./helpers/sessions-queue.js";

describe("debounced touch", () => {
  let q: SessionsQueue;
  let touches: DebouncedTouch;
  const open = (intervalMs: number, now: () => number = Date.now) => {
    q = openSessionsQueue("touch");
    touches = createDebouncedTouch({ send: (sessionId, { at, backendIds }) => q.publisher.touch(sessionId, { at, backendIds }), intervalMs, now });
    return touches;
  };
  afterEach(async () => {
    await touches.flush();
    await q.close();
  });

  it("sends the first touch at once, one trailing touch at the end of the interval, and nothing while idle", async () => {
    const t = open(400);
    for (let i = 0; i < 20; i++) t.touch("s1", []);
    await waitFor("leading touch", async () => (await q.messages()).length === 1);
    for (let i = 0; i < 20; i++) t.touch("s1", []);
    await waitFor("trailing touch", async () => (await q.messages()).length === 2, 5_000);
    await sleep(1_000);
    expect((await q.messages()).map((m) => m.type)).toEqual(["session.touched", "session.touched"]);
    // Sessions are debounced on their own.
    t.touch("s2", []);
    await waitFor("leading touch of s2", async () => (await q.messages("s2")).length === 1);
  });

  it("names each backend of the trailing touch once, dated by the first use among them", async () => {
    let clock = Date.parse("2030-01-01T00:00:00.000Z");
    const t = open(300, () => clock);
    t.touch("s1", ["b1"]);
    clock += 1_000;
    t.touch("s1", []);
    clock += 1_000;
    const firstUseOfB2 = clock;
    t.touch("s1", ["b2"]);
    clock += 1_000;
    t.touch("s1", ["b2", "b3"]);
    await waitFor("trailing touch", async () => (await q.messages()).length === 2, 5_000);
    const [lead, trail] = await q.messages();
    expect(lead).toMatchObject({ backendIds: ["b1"], occurredAt: "2030-01-01T00:00:00.000Z" });
    expect(trail).toMatchObject({ backendIds: ["b2", "b3"], occurredAt: new Date(firstUseOfB2).toISOString() });
  });

  it("drop forgets a session's pending touch; flush sends every other pending touch at once", async () => {
    const t = open(60_000);
    t.touch("s1", []);
    t.touch("s1", ["b1"]);
    t.touch("s2", []);
    t.touch("s2", []);
    await waitFor("leading touches", async () => (await q.messages()).length === 2);
    t.drop("s2");
    await t.flush();
    expect((await q.messages("s1")).map((m) => m.backendIds)).toEqual([undefined, ["b1"]]);
    expect(await q.messages("s2")).toHaveLength(1);
  });

  it("lets a registration stand in for a pending touch without backend traffic, not for one with traffic", async () => {
    const t = open(60_000);
    t.touch("idle", []);
    t.touch("idle", []);
    t.touch("busy", []);
    t.touch("busy", ["b1"]);
    t.coveredByRegistration("idle");
    t.coveredByRegistration("busy");
    // The debounce of `idle` starts over: its next touch is a leading one, sent at once.
    t.touch("idle", []);
    await waitFor("three leading touches", async () => (await q.messages()).length === 3);
    await t.flush();
    expect(await q.messages("idle")).toHaveLength(2);
    expect((await q.messages("busy")).map((m) => m.backendIds)).toEqual([undefined, ["b1"]]);
  });
});
