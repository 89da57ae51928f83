import { describe, expect, inject, it } from "vitest";
import type { Registry } from "prom-client";
import { createKeys, schedulerId } from "@vmcp-keepalive/shared";
import { openBackendSession, sleep, waitFor, type McpTestBackend, type McpTestBackendOptions, type OpenedSession } from "@vmcp-keepalive/testkit";
import { closeAfterEach, createHarness, startBackend, logsMatching, type Harness } from "./helpers.js";

/*
 * The per-backend circuit breaker shared by 3 workers, its single probe per window, and 404
 * handling. The 3 workers are 3 `createWorker` instances in
 * this test process, each with its own Redis connections, BullMQ Worker and Registry — the
 * breaker only sees Redis, so this is the same as 3 processes for what is asserted here (the
 * cross-process case is covered in test/learned-method.test.ts).
 */

const redisUrl = inject("redisUrl");
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
closeAfterEach(redisUrl, () => [h, (h = undefined)][0], cleanups);

const backend = (options?: McpTestBackendOptions) => startBackend(cleanups, options);

async function counterValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((sum, v) => sum + v.value, 0);
}

async function eventsOf(h: Harness, type: string): Promise<Record<string, unknown>[]> {
  const jobs = await h.events.getJobs(["waiting", "delayed", "active", "completed", "failed", "prioritized"]);
  return jobs.filter((j) => j.name === type).map((j) => j.data as Record<string, unknown>);
}

/** Registers `n` sessions on one backend, each with its own real backend session. */
async function registerSessions(h: Harness, b: McpTestBackend, backendId: string, n: number): Promise<{ id: string; s: OpenedSession }[]> {
  const out: { id: string; s: OpenedSession }[] = [];
  for (let i = 1; i <= n; i++) {
    const s = await openBackendSession(b.url);
    await h.register(`s${i}`, [{ backendId, backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }]);
    out.push({ id: `s${i}`, s });
  }
  return out;
}

const keepaliveCalls = (b: McpTestBackend) => b.calls.filter((c) => c.method === "ping" || c.method === "tools/call");

describe("circuit breaker", () => {
  it("counts failures across workers; only the worker whose write opened it logs, counts and publishes; no call while open", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      breaker: { failure_threshold: 3, probe_after: "60s", min_failure_span: 0 },
      backends: [{ id: "down", url: b.url }],
    });
    await registerSessions(h, b, "down", 3);
    const ws = [h.idleWorker("w1"), h.idleWorker("w2"), h.idleWorker("w3")];
    b.mode = "http_503";

    expect(await ws[0]!.worker.run("s1", "down")).toMatchObject({ outcome: "failure", reason: "http_5xx" });
    expect(await h.readBackend("down")).toMatchObject({ state: "closed", consecutiveFailures: 1 });
    expect(await ws[1]!.worker.run("s2", "down")).toMatchObject({ outcome: "failure", reason: "http_5xx" });
    expect(await h.readBackend("down")).toMatchObject({ state: "closed", consecutiveFailures: 2 });
    expect(await ws[2]!.worker.run("s3", "down")).toMatchObject({ outcome: "failure", reason: "http_5xx" });
    const opened = await h.readBackend("down");
    expect(opened).toMatchObject({ state: "open", consecutiveFailures: 3, openReason: "http_5xx" });
    expect(opened.probeAt! - opened.openedAt!).toBeGreaterThanOrEqual(60_000);
    expect(opened.probeAt! - opened.openedAt!).toBeLessThanOrEqual(66_000);

    const warnings = ws.map((w) => logsMatching(w.lines, "circuit breaker opened"));
    expect(warnings.map((w) => w.length)).toEqual([0, 0, 1]);
    expect(warnings[2]![0]).toMatchObject({ level: "warn", backendId: "down", reason: "http_5xx", consecutiveFailures: 3 });
    expect(await Promise.all(ws.map((w) => counterValue(w.worker.registry, "keepalive_auto_disabled_total", { backend: "down", reason: "http_5xx", method: "ping" })))).toEqual([0, 0, 1]);
    const published = await eventsOf(h, "backend.breaker_opened");
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ backendId: "down", reason: "http_5xx", consecutiveFailures: 3 });

    const before = keepaliveCalls(b).length;
    for (const w of ws) {
      for (const sid of ["s1", "s2", "s3"]) expect(await w.worker.run(sid, "down")).toEqual({ outcome: "skipped", reason: "breaker_open" });
    }
    expect(keepaliveCalls(b).length).toBe(before);
    expect(await counterValue(ws[0]!.worker.registry, "keepalive_skipped_total", { backend: "down", reason: "breaker_open" })).toBe(3);
    expect((await h.store.readPair("s1", "down"))?.lastOutcome).toBe("skipped:breaker_open");
  });

  it("opens the breaker of a backend that goes down once across 3 queue-driven workers; warning logged once; no call reaches it while open", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms", concurrency: 4 },
      breaker: { failure_threshold: 3, probe_after: "60s", min_failure_span: 0 },
      backends: [{ id: "down", url: b.url }],
    });
    const sessions = await registerSessions(h, b, "down", 4);
    for (const { id } of sessions) await h.schedule(id, "down");
    const ws = [await h.startWorker("w1"), await h.startWorker("w2"), await h.startWorker("w3")];
    await waitFor("a ping on every session", () => sessions.every(({ s }) => b.count("ping", s.sessionId) >= 1), 20_000);

    b.mode = "http_503";
    await waitFor("the breaker to open", async () => (await h!.readBackend("down")).state === "open", 20_000);
    // Calls already in flight when it opened finish within the call timeout (500 ms); margin for a loaded machine.
    await sleep(1_500);
    const atOpen = keepaliveCalls(b).length;
    // Every pair's ticks keep coming while it is open, and each is skipped without a call.
    const skippedTotal = async () =>
      (await Promise.all(ws.map((w) => counterValue(w.worker.registry, "keepalive_skipped_total", { backend: "down", reason: "breaker_open" })))).reduce((a, v) => a + v, 0);
    const skippedBefore = await skippedTotal();
    await waitFor("each pair's next tick skipped while open", async () => (await skippedTotal()) >= skippedBefore + sessions.length, 20_000);
    expect(keepaliveCalls(b).length).toBe(atOpen);

    const warnings = ws.flatMap((w) => logsMatching(w.lines, "circuit breaker opened"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: "warn", backendId: "down", reason: "http_5xx", consecutiveFailures: 3 });
    const autoDisabled = await Promise.all(ws.map((w) => counterValue(w.worker.registry, "keepalive_auto_disabled_total", { backend: "down" })));
    expect(autoDisabled.reduce((a, v) => a + v, 0)).toBe(1);
    // Isolation: the backend failing never failed a job.
    expect(await h.queue.getFailedCount()).toBe(0);
  });

  it("opens for a backend that stays down past the minimum failure span, never for a shorter blip", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms", concurrency: 4 },
      breaker: { failure_threshold: 3, probe_after: "60s", min_failure_span: "3s" },
      backends: [{ id: "down", url: b.url }],
    });
    const sessions = await registerSessions(h, b, "down", 4);
    for (const { id } of sessions) await h.schedule(id, "down");
    const w = await h.startWorker("w1");
    await waitFor("a ping on every session", () => sessions.every(({ s }) => b.count("ping", s.sessionId) >= 1), 20_000);

    // A blip of 1.5 s: 4 pairs at 1 s fail past the threshold, but within less than the span.
    b.mode = "http_503";
    await waitFor("failures past the threshold", async () => (await h!.readBackend("down")).consecutiveFailures >= 3, 10_000);
    await sleep(1_500 - 500);
    b.mode = "ok";
    await waitFor("the run of failures ended by a success", async () => (await h!.readBackend("down")).consecutiveFailures === 0, 10_000);
    expect((await h.readBackend("down")).state).toBe("closed");

    // Down for good: it opens with the first failure once the run of failures spans 3 s — not
    // before, and not later. Read from what happened (failure times, the breaker's openedAt),
    // not from a wall-clock window, so a slow machine cannot make it pass or fail.
    const failedAt: number[] = [];
    w.worker.events.on("failure", () => void failedAt.push(Date.now()));
    b.mode = "http_503";
    await waitFor("the breaker to open", async () => (await h!.readBackend("down")).state === "open", 30_000, 20);
    const openedAt = (await h.readBackend("down")).openedAt!;
    const runStart = failedAt[0]!;
    expect(openedAt - runStart).toBeGreaterThanOrEqual(3_000 - 50);
    // Failures that came after the span had passed but before it opened: only ticks already in
    // flight together (at most one per pair, 4 pairs), never a further round of ticks.
    expect(failedAt.filter((t) => t >= runStart + 3_000 + 100 && t < openedAt).length).toBeLessThanOrEqual(sessions.length);
  });

  it("sends exactly one probe per window across 3 workers; a still-dead backend stays open; a recovered one closes and every pair resumes", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms", concurrency: 4 },
      breaker: { failure_threshold: 3, probe_after: "2s", min_failure_span: 0 },
      backends: [{ id: "flaky", url: b.url }],
    });
    const sessions = await registerSessions(h, b, "flaky", 4);
    for (const { id } of sessions) await h.schedule(id, "flaky");
    const ws = [await h.startWorker("w1"), await h.startWorker("w2"), await h.startWorker("w3")];
    await waitFor("a ping on every session", () => sessions.every(({ s }) => b.count("ping", s.sessionId) >= 1), 20_000);

    b.mode = "http_503";
    await waitFor("the breaker to open", async () => (await h!.readBackend("flaky")).state === "open", 20_000);
    const openedAt = (await h.readBackend("flaky")).openedAt!;
    await sleep(1_500); // in-flight calls of the opening (timeout 500 ms); the first probe is ≥ 2 s after the opening
    const afterOpen = keepaliveCalls(b).length;

    // Still dead: wait for two windows' probes. Each window gets one probe, never two, across
    // the 3 workers and 4 pairs (that tick every second): probes are a window apart.
    await waitFor("two probes", () => keepaliveCalls(b).length - afterOpen >= 2, 20_000);
    await sleep(700); // let the second probe's worker finish its write and log
    const probes = keepaliveCalls(b).slice(afterOpen);
    expect(probes[0]!.at - openedAt).toBeGreaterThanOrEqual(1_900);
    for (let i = 1; i < probes.length; i++) expect(probes[i]!.at - probes[i - 1]!.at).toBeGreaterThanOrEqual(1_900);
    expect(probes.length).toBeLessThanOrEqual(Math.floor((Date.now() - openedAt) / 2_000));
    expect(["open", "probing"]).toContain((await h.readBackend("flaky")).state);
    expect(ws.flatMap((w) => logsMatching(w.lines, "circuit breaker probe failed")).length).toBe(probes.length);
    expect(ws.flatMap((w) => logsMatching(w.lines, "circuit breaker opened"))).toHaveLength(1);

    // Recovered: the next probe closes it; every pair gets keepalives again, on its original session.
    b.mode = "ok";
    await waitFor("the breaker to close", async () => (await h!.readBackend("flaky")).state === "closed", 10_000);
    const closedAt = Date.now();
    // The closing worker logs once its script's reply is back, which may come after this process
    // read the new state on another connection: wait for the line, then require exactly one.
    await waitFor("the close logged", () => ws.some((w) => logsMatching(w.lines, "circuit breaker closed").length > 0), 5_000);
    await sleep(200);
    const closed = ws.flatMap((w) => logsMatching(w.lines, "circuit breaker closed"));
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ level: "info", backendId: "flaky" });
    expect(await eventsOf(h, "backend.breaker_closed")).toEqual([expect.objectContaining({ backendId: "flaky" })]);
    await waitFor(
      "a successful ping on every session after the close",
      () => sessions.every(({ s }) => b.calls.some((c) => c.method === "ping" && c.sessionId === s.sessionId && c.at > closedAt && c.status === undefined)),
      10_000,
    );
    // No session was recreated: the backend saw exactly the 4 initializes of the test.
    expect(b.count("initialize")).toBe(4);
    expect(await h.queue.getFailedCount()).toBe(0);
  });

  it("stops the pair on a 404, publishes backend.session_expired with the ids, and leaves the breaker untouched", async () => {
    const b = await backend();
    h = createHarness(redisUrl, {
      keepalive: { interval: "1s", timeout: "500ms" },
      breaker: { failure_threshold: 2, min_failure_span: 0 },
      backends: [{ id: "b", url: b.url }],
    });
    // Three pairs whose backend sessions the backend does not know (expired): more than the threshold.
    for (const sid of ["s1", "s2", "s3"]) {
      await h.register(sid, [{ backendId: "b", backendSessionId: `gone-${sid}` }]);
      await h.schedule(sid, "b");
    }
    const { worker, lines } = h.idleWorker();
    for (const sid of ["s1", "s2", "s3"]) {
      expect(await worker.run(sid, "b")).toMatchObject({ outcome: "failure", reason: "session_not_found", recorded: true });
      expect((await h.store.readPair(sid, "b"))?.status).toBe("expired");
      expect(await h.queue.getJobScheduler(schedulerId(sid, "b"))).toBeUndefined();
    }
    const expired = await eventsOf(h, "backend.session_expired");
    expect(expired.map((e) => [e["sessionId"], e["backendId"], e["backendSessionId"]]).sort()).toEqual([
      ["s1", "b", "gone-s1"],
      ["s2", "b", "gone-s2"],
      ["s3", "b", "gone-s3"],
    ]);
    // The same events on the event stream, field `event`, for vMCPs that read Redis Streams.
    const streamed = (await h.redis.xrange(createKeys(h.prefix).sessionEventsStream, "-", "+")).map(([, fields]) => {
      expect(fields[0]).toBe("event");
      return JSON.parse(fields[1]!) as Record<string, unknown>;
    });
    expect(streamed.filter((e) => e["type"] === "backend.session_expired").sort((x, y) => String(x["sessionId"]).localeCompare(String(y["sessionId"])))).toEqual(
      [...expired].sort((x, y) => String(x["sessionId"]).localeCompare(String(y["sessionId"]))),
    );
    expect(await h.readBackend("b")).toMatchObject({ state: "closed", consecutiveFailures: 0 });
    expect(await eventsOf(h, "backend.breaker_opened")).toHaveLength(0);
    expect(logsMatching(lines, "backend session not found (404)")).toHaveLength(3);
    // A late tick of a stopped pair calls nothing.
    const before = keepaliveCalls(b).length;
    expect(await worker.run("s1", "b")).toEqual({ outcome: "skipped", reason: "disabled" });
    expect(keepaliveCalls(b).length).toBe(before);
  });
});
