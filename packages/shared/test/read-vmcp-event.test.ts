import { Queue } from "bullmq";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { expectNoLeakedConnections, flushPrefix, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createVmcpClient, type VmcpClient } from "../src/client/vmcp-client.js";
import { readVmcpEvent } from "../src/events/read-vmcp-event.js";
import { VMCP_EVENT_JOB_OPTIONS, type VmcpEvent } from "../src/events/vmcp-events.js";
import type { ClientLogger } from "../src/logger.js";
import { VMCP_EVENT_EXAMPLES } from "../src/messages/contract-examples.js";
import { closeRedis, createRedis, type RedisConnection } from "../src/redis/connection.js";
import { createKeys } from "../src/redis/keys.js";

const redisUrl = inject("redisUrl");

describe("readVmcpEvent", () => {
  it("reads every event example as it is", () => {
    for (const example of Object.values(VMCP_EVENT_EXAMPLES)) expect(readVmcpEvent(example)).toEqual({ kind: "event", event: example });
  });

  it("leaves out the fields it does not know and keeps the rest", () => {
    for (const example of Object.values(VMCP_EVENT_EXAMPLES)) expect(readVmcpEvent({ ...example, addedLater: { nested: [1] } })).toEqual({ kind: "event", event: example });
  });

  it("tells an event type it does not know apart from an error", () => {
    expect(readVmcpEvent({ type: "backend.something_new", v: 1, whatever: true })).toEqual({ kind: "unknown_type", type: "backend.something_new" });
  });

  it("still rejects an event of a known type that breaks its schema, naming the field", () => {
    const opened = VMCP_EVENT_EXAMPLES["backend.breaker_opened"];
    expect(readVmcpEvent({ ...opened, consecutiveFailures: "five" })).toEqual({ kind: "invalid", detail: "consecutiveFailures: expected number, received string" });
    expect(readVmcpEvent({ ...opened, v: 2 })).toMatchObject({ kind: "invalid", detail: expect.stringMatching(/^v: /) });
    const { backendId: _, ...withoutBackend } = opened;
    expect(readVmcpEvent(withoutBackend)).toEqual({ kind: "invalid", detail: "backendId: expected string (missing)" });
  });

  it("rejects what is not an event", () => {
    for (const data of [null, "backend.breaker_closed", [VMCP_EVENT_EXAMPLES["backend.breaker_closed"]], { v: 1 }, { type: 7 }]) expect(readVmcpEvent(data)).toMatchObject({ kind: "invalid" });
  });
});

/** A ClientLogger that keeps every line with its level. */
function recordingLogger(): { log: ClientLogger; lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  const log: ClientLogger = { child: () => log, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { log, lines };
}

// A worker a version ahead writes what this client's schema does not have yet; the client keeps
// handling what it knows (docs/contract.md, "Evolution"). The jobs are added as such a worker would,
// bypassing this version's strict publisher.
describe("a vMCP client reading events from a newer worker", () => {
  let prefix: string;
  let redis: RedisConnection;
  let queue: Queue;
  let client: VmcpClient;
  let logged: ReturnType<typeof recordingLogger>;

  beforeEach(() => {
    prefix = testPrefix("tolerant-events");
    redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    const where = createKeys(prefix).eventsQueue;
    queue = new Queue(where.name, { connection: redis, prefix: where.prefix });
    logged = recordingLogger();
    client = createVmcpClient({ redisUrl, prefix, replicaId: "replica-1", logger: logged.log });
  });
  afterEach(async () => {
    await client.close();
    await queue.close();
    await closeRedis(redis);
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("hands an event with a field it does not know to the handler, with the fields it knows", async () => {
    const seen: VmcpEvent[] = [];
    client.onEvent((e) => void seen.push(e));
    const expired = VMCP_EVENT_EXAMPLES["backend.session_expired"];
    const job = await queue.add(expired.type, { ...expired, retryAfterMs: 5_000 }, VMCP_EVENT_JOB_OPTIONS);
    await waitFor("the event handled", () => seen.length === 1, 15_000);
    expect(seen).toEqual([expired]);
    await waitFor("its job completed", async () => (await queue.getJobState(job.id!)) === "completed", 15_000);
  });

  it("completes an event of a type it does not know without calling a handler or logging a warning or error", async () => {
    const seen: VmcpEvent[] = [];
    client.onEvent((e) => void seen.push(e));
    const unknown = await queue.add("backend.something_new", { type: "backend.something_new", v: 1, occurredAt: "2026-12-07T12:00:00.000Z", backendId: "b1" }, VMCP_EVENT_JOB_OPTIONS);
    // A known event behind it shows the consumer kept going.
    const closed = VMCP_EVENT_EXAMPLES["backend.breaker_closed"];
    await queue.add(closed.type, closed, VMCP_EVENT_JOB_OPTIONS);
    await waitFor("the unknown event's job completed", async () => (await queue.getJobState(unknown.id!)) === "completed", 15_000);
    await waitFor("the known event handled", () => seen.length === 1, 15_000);
    expect(seen).toEqual([closed]);
    expect((await queue.getJob(unknown.id!))!.attemptsMade).toBe(1);
    expect(logged.lines.filter((l) => l.level === "warn" || l.level === "error")).toEqual([]);
    expect(logged.lines).toContainEqual(expect.objectContaining({ level: "debug", obj: expect.objectContaining({ type: "backend.something_new" }) }));
  });
});
