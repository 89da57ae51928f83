import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createKeys, STREAM_SCHEDULER_GROUP } from "@vmcp-keepalive/shared";
import { createLogger, parseConfig } from "@vmcp-keepalive/runtime";
import { captureLines, expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createSessionStore } from "../src/internal.js";
import { createScheduler, type Scheduler } from "../src/create-scheduler.js";

/*
 * The ingress stream against a real redis-server and in-process schedulers: entries are applied
 * through the queue's own path and leave the stream; bad ones are kept on the rejected stream
 * with their reason; a failing one is given up after streams.max_deliveries; a dead consumer's
 * entries are claimed; a vanished stream and group are created again.
 */
const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
const prefixes = new Set<string>();
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  for (const prefix of prefixes) {
    await expectNoLeakedConnections(url, (n) => n.endsWith(`@${prefix}`));
    await flushPrefix(url, prefix);
  }
  prefixes.clear();
});

async function setup(prefix = testPrefix(), streams: Record<string, unknown> = {}) {
  const config = parseConfig({
    redis: { url, prefix },
    keepalive: { interval: "10s", timeout: "1s" },
    registration: { max_message_bytes: 2_048 },
    streams: { claim_idle: "1s", max_deliveries: 3, ...streams },
    log: { level: "info" },
    backends: [{ id: "pw", url: "http://127.0.0.1:1/mcp", session_ttl: "1m" }],
  });
  const { destination, lines } = captureLines();
  const scheduler: Scheduler = createScheduler({ config, logger: createLogger({ name: "test", level: "info", destination }) });
  await scheduler.start();
  const redis = new Redis(url, { connectionName: `vmk-test@${prefix}` });
  const keys = createKeys(prefix);
  prefixes.add(prefix);
  cleanups.push(
    async () => redis.quit(),
    () => scheduler.stop(),
  );
  return { config, scheduler, redis, keys, lines, store: createSessionStore(redis, keys) };
}

const registration = (sessionId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: "session.registered",
    sessionId,
    replicaId: "r1",
    occurredAt: new Date().toISOString(),
    sequence: Date.now() * 1000,
    sessionTtlMs: 600_000,
    backends: [{ backendId: "pw", backendSessionId: `bs-${sessionId}` }],
    ...extra,
  });

/** Reads a whole stream as `{ id, fields }`. */
async function readStream(redis: Redis, key: string): Promise<{ id: string; fields: Record<string, string> }[]> {
  const rows = await redis.xrange(key, "-", "+");
  return rows.map(([id, list]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < list.length; i += 2) fields[list[i]!] = list[i + 1]!;
    return { id, fields };
  });
}

const metric = async (scheduler: Scheduler, name: string, labels: string) => {
  const text = await scheduler.registry.getSingleMetricAsString(name);
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(" ").pop());
};

describe("the ingress stream", () => {
  it("1,000 malformed entries among 1,000 valid ones: each rejected with its reason onto the rejected stream, each valid one applied, the stream empty", async () => {
    const prefix = testPrefix();
    // Two schedulers share the group, as in a deployment.
    const a = await setup(prefix);
    const b = await setup(prefix);
    const { redis, keys } = a;
    const expected = new Map<string, string>();
    const valid: string[] = [];
    const malformed: [string, string, string][] = [];
    for (let i = 0; i < 1_000; i++) {
      switch (i % 6) {
        case 0:
          malformed.push(["invalid_json", "message", `{"type": "session.registered", oops ${i}`]);
          break;
        case 1:
          malformed.push(["invalid_message", "message", registration(`m${i}`, { sequence: "one" })]);
          break;
        case 2:
          malformed.push(["too_large", "message", registration(`m${i}`, { backends: [{ backendId: "pw", backendSessionId: "x".repeat(3_000) }] })]);
          break;
        case 3:
          malformed.push(["unknown_backend", "message", registration(`m${i}`, { backends: [{ backendId: "nope", backendSessionId: "x" }] })]);
          break;
        case 4:
          malformed.push(["invalid_message", "msg", registration(`m${i}`)]);
          break;
        default:
          malformed.push(["invalid_message", "message", "[1, 2, 3]"]);
      }
    }
    const pipeline = redis.pipeline();
    for (let i = 0; i < 1_000; i++) {
      valid.push(`v${i}`);
      pipeline.xadd(keys.sessionMessagesStream, "*", "message", registration(`v${i}`));
      const [, field, payload] = malformed[i]!;
      pipeline.xadd(keys.sessionMessagesStream, "*", field, payload);
    }
    const ids = ((await pipeline.exec()) ?? []).map(([err, id]) => {
      expect(err).toBeNull();
      return String(id);
    });
    for (let i = 0; i < 1_000; i++) expected.set(ids[2 * i + 1]!, malformed[i]![0]);

    await waitFor("every entry handled", async () => (await redis.xlen(keys.sessionMessagesRejectedStream)) === 1_000 && (await a.store.listPairs()).length === 1_000, 30_000, 100);
    await waitFor("the ingress stream empty", async () => (await redis.xlen(keys.sessionMessagesStream)) === 0, 10_000);
    expect(await redis.xpending(keys.sessionMessagesStream, STREAM_SCHEDULER_GROUP)).toEqual([0, null, null, null]);

    const rejected = await readStream(redis, keys.sessionMessagesRejectedStream);
    const byOriginal = new Map(rejected.map((r) => [r.fields["id"]!, r.fields]));
    expect(byOriginal.size).toBe(1_000);
    for (const [id, reason] of expected) {
      const kept = byOriginal.get(id);
      expect(kept?.["reason"], `entry ${id}`).toBe(reason);
      expect(kept?.["detail"]).toBeTruthy();
    }
    // The original message is kept (an oversized one cut to registration.max_message_bytes).
    const firstBadJson = rejected.find((r) => r.fields["reason"] === "invalid_json")!;
    expect(firstBadJson.fields["message"]).toMatch(/^\{"type": "session.registered", oops \d+$/);
    expect(rejected.find((r) => r.fields["reason"] === "too_large")!.fields["message"]!.length).toBe(2_048);
    expect(rejected.find((r) => r.fields["detail"]!.startsWith("entry has no"))!.fields["detail"]).toBe('entry has no "message" field (it has "msg")');

    const pairs = await a.store.listPairs();
    expect(pairs.map((p) => p.sessionId).sort()).toEqual([...valid].sort());
    const sum = async (name: string, labels: string) => ((await metric(a.scheduler, name, labels)) ?? 0) + ((await metric(b.scheduler, name, labels)) ?? 0);
    expect(await sum("vmk_registration_rejected_total", 'reason="invalid_json"')).toBe(167);
    expect(await sum("vmk_registration_rejected_total", 'reason="too_large"')).toBe(167);
    expect(await sum("vmk_registration_rejected_total", 'reason="unknown_backend"')).toBe(167);
    expect(await sum("vmk_registration_rejected_total", 'reason="invalid_message"')).toBe(499);
    expect(await sum("vmk_stream_messages_total", 'result="applied"')).toBe(1_000);
    expect(await sum("vmk_stream_messages_total", 'result="rejected"')).toBe(1_000);
    expect(await sum("vmk_registration_messages_total", 'type="session.registered",status="applied"')).toBe(1_000);
    const logged = [...a.lines, ...b.lines].filter((l) => l["msg"] === "registration message rejected");
    expect(logged).toHaveLength(1_000);
    expect(logged[0]).toMatchObject({ stream: "session-messages", entryId: expect.any(String) as string });
  }, 60_000);

  it("an entry that keeps failing for another reason (a script error) is given up after streams.max_deliveries, without holding up the rest", async () => {
    const { redis, keys, scheduler, store, lines } = await setup();
    // A session hash of the wrong type: the registration script fails with WRONGTYPE on every delivery.
    await redis.set(keys.session("broken"), "not a hash");
    const brokenId = String(await redis.xadd(keys.sessionMessagesStream, "*", "message", registration("broken")));
    for (let i = 0; i < 20; i++) await redis.xadd(keys.sessionMessagesStream, "*", "message", registration(`ok${i}`));
    await waitFor("the others applied", async () => (await store.listPairs()).length === 20, 10_000);
    const kept = await waitFor("given up", async () => (await readStream(redis, keys.sessionMessagesRejectedStream))[0], 15_000, 100);
    expect(kept.fields).toMatchObject({ id: brokenId, reason: "delivery_limit" });
    expect(kept.fields["detail"]).toMatch(/^failed 3 deliveries \(streams.max_deliveries 3\); last error here: WRONGTYPE/);
    expect(JSON.parse(kept.fields["message"]!)).toMatchObject({ sessionId: "broken" });
    expect(await redis.xlen(keys.sessionMessagesStream)).toBe(0);
    expect(await metric(scheduler, "vmk_stream_messages_total", 'result="given_up"')).toBe(1);
    expect(await metric(scheduler, "vmk_stream_messages_total", 'result="failed"')).toBe(3);
    expect(lines.some((l) => l["msg"] === "ingress stream entry given up: moved to the rejected stream")).toBe(true);
  }, 30_000);

  it("takes over the entries a consumer that died left pending, after streams.claim_idle", async () => {
    const prefix = testPrefix();
    const redis = new Redis(url, { connectionName: `vmk-test-dead@${prefix}` });
    cleanups.push(async () => redis.quit());
    const keys = createKeys(prefix);
    // A scheduler that read 50 entries and died before acknowledging them.
    await redis.xgroup("CREATE", keys.sessionMessagesStream, STREAM_SCHEDULER_GROUP, "0", "MKSTREAM");
    for (let i = 0; i < 50; i++) await redis.xadd(keys.sessionMessagesStream, "*", "message", registration(`d${i}`));
    await redis.xreadgroup("GROUP", STREAM_SCHEDULER_GROUP, "dead-scheduler", "COUNT", 50, "STREAMS", keys.sessionMessagesStream, ">");
    const diedAt = Date.now();
    const { scheduler, store } = await setup(prefix);
    await waitFor("the dead consumer's entries applied", async () => (await store.listPairs()).length === 50, 10_000);
    const tookMs = Date.now() - diedAt;
    console.log(`50 pending entries of a dead consumer applied ${tookMs} ms after it died (claim_idle 1 s)`);
    expect(tookMs).toBeGreaterThanOrEqual(1_000);
    expect(tookMs).toBeLessThan(5_000);
    await waitFor("the stream empty", async () => (await redis.xlen(keys.sessionMessagesStream)) === 0);
    expect(await metric(scheduler, "vmk_stream_claimed_total", "")).toBeUndefined();
    expect(await scheduler.registry.getSingleMetricAsString("vmk_stream_claimed_total")).toMatch(/vmk_stream_claimed_total 50$/m);
  }, 30_000);

  it("creates the stream and its group again when they vanish (a FLUSHALL), and goes on", async () => {
    const { redis, keys, store } = await setup();
    await redis.xadd(keys.sessionMessagesStream, "*", "message", registration("before"));
    await waitFor("applied", async () => (await store.listPairs()).length === 1);
    await redis.del(keys.sessionMessagesStream);
    // A vMCP adds while the group is gone: XADD makes a plain stream, the scheduler's next read finds no group.
    await redis.xadd(keys.sessionMessagesStream, "*", "message", registration("after"));
    await waitFor("applied after the stream vanished", async () => (await store.listPairs()).length === 2, 10_000);
    expect((await redis.xinfo("GROUPS", keys.sessionMessagesStream)) as unknown[]).toHaveLength(1);
  });

  it("applies one session's entries in stream order", async () => {
    const { redis, keys, store } = await setup();
    const at = Date.now() * 1000;
    const trafficAt = Date.now() - 1_000;
    const pipeline = redis.pipeline();
    // Out of order, a touch before its registration would be `unknown` (no traffic recorded) and
    // an end before it would leave the session registered.
    for (let i = 0; i < 100; i++) {
      const s = `o${i}`;
      pipeline.xadd(keys.sessionMessagesStream, "*", "message", registration(s, { sequence: at + 1 }));
      pipeline.xadd(
        keys.sessionMessagesStream,
        "*",
        "message",
        JSON.stringify({ type: "session.touched", sessionId: s, occurredAt: new Date(trafficAt).toISOString(), sequence: at + 2, backendIds: ["pw"] }),
      );
      if (i % 2 === 1) pipeline.xadd(keys.sessionMessagesStream, "*", "message", JSON.stringify({ type: "session.ended", sessionId: s, occurredAt: new Date().toISOString(), sequence: at + 3 }));
    }
    await pipeline.exec();
    await waitFor("the stream empty", async () => (await redis.xlen(keys.sessionMessagesStream)) === 0);
    const pairs = await store.listPairs();
    expect(pairs.map((p) => p.sessionId).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `o${2 * i}`).sort());
    for (const p of pairs) expect(p.lastTrafficAt, p.sessionId).toBe(trafficAt);
  });
});
