import { afterEach, describe, expect, inject, it } from "vitest";
import { expectNoLeakedConnections, flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createVmcpEventPublisher, VmcpEventSchema, type VmcpEvent } from "../src/events/vmcp-events.js";
import { closeRedis, createRedis } from "../src/redis/connection.js";
import { createKeys } from "../src/redis/keys.js";

const redisUrl = inject("redisUrl");
const closed = (backendId: string): VmcpEvent => ({ type: "backend.breaker_closed", v: 1, occurredAt: new Date().toISOString(), backendId });

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(maxLen?: number) {
  const prefix = testPrefix("evstream");
  const redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
  const keys = createKeys(prefix);
  const publisher = createVmcpEventPublisher(redis, keys.eventsQueue, { key: keys.sessionEventsStream, ...(maxLen === undefined ? {} : { maxLen }) });
  cleanups.push(async () => {
    await publisher.close();
    await closeRedis(redis);
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });
  return { redis, keys, publisher };
}

describe("the event stream", () => {
  it("gets every published event as field `event`, and two deployments' consumer groups each read all of them", async () => {
    const { redis, keys, publisher } = await setup();
    for (let i = 0; i < 5; i++) await publisher.publish(closed(`b${i}`));
    expect(await redis.xlen(keys.sessionEventsStream)).toBe(5);
    // Also still on the queue.
    expect(await redis.llen(`${keys.eventsQueue.prefix}:vmcp-events:wait`)).toBe(5);

    const readAll = async (group: string, consumer: string) => {
      await redis.xgroup("CREATE", keys.sessionEventsStream, group, "0");
      const reply = (await redis.xreadgroup("GROUP", group, consumer, "COUNT", 100, "STREAMS", keys.sessionEventsStream, ">")) as [string, [string, string[]][]][];
      const entries = reply[0]![1];
      await redis.xack(keys.sessionEventsStream, group, ...entries.map(([id]) => id));
      return entries.map(([, fields]) => {
        expect(fields[0]).toBe("event");
        return VmcpEventSchema.parse(JSON.parse(fields[1]!));
      });
    };
    const a = await readAll("deployment-a", "replica-1");
    const b = await readAll("deployment-b", "replica-1");
    expect(a.map((e) => (e.type === "backend.breaker_closed" ? e.backendId : ""))).toEqual(["b0", "b1", "b2", "b3", "b4"]);
    expect(b).toEqual(a);
    expect(await redis.xpending(keys.sessionEventsStream, "deployment-a")).toEqual([0, null, null, null]);
  });

  it("is capped at about maxLen, and 0 means no event stream", async () => {
    const capped = await setup(100);
    for (let i = 0; i < 500; i++) await capped.publisher.publish(closed("b"));
    const len = await capped.redis.xlen(capped.keys.sessionEventsStream);
    // MAXLEN ~ trims whole nodes of the stream (100 entries by default): at least 100, well under 500.
    expect(len).toBeGreaterThanOrEqual(100);
    expect(len).toBeLessThan(300);

    const off = await setup(0);
    await off.publisher.publish(closed("b"));
    expect(await off.redis.exists(off.keys.sessionEventsStream)).toBe(0);
  });

  it("refuses a negative cap", () => {
    const redis = createRedis(redisUrl, "client", "vmk-test-refuse", { lazyConnect: true });
    cleanups.push(() => closeRedis(redis));
    expect(() => createVmcpEventPublisher(redis, "p", { key: "p:session-events", maxLen: -1 })).toThrow("event stream maxLen must be an integer ≥ 0, got -1");
  });
});
