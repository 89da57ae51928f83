import { Queue } from "bullmq";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { expectNoLeakedConnections, flushPrefix, openVmkConnections, sleep, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { createEventSubscription, type EventSubscription } from "../src/client/event-subscription.js";
import { createVmcpEventPublisher, type VmcpEvent, type VmcpEventPublisher } from "../src/events/vmcp-events.js";
import { SILENT_LOGGER } from "../src/logger.js";
import { closeRedis, createRedis, type RedisConnection } from "../src/redis/connection.js";
import { createKeys } from "../src/redis/keys.js";

const redisUrl = inject("redisUrl");
const closed = (backendId: string): VmcpEvent => ({ type: "backend.breaker_closed", v: 1, occurredAt: new Date().toISOString(), backendId });

describe("vmcp-events subscription", () => {
  let prefix: string;
  let redis: RedisConnection;
  let publisher: VmcpEventPublisher;
  let subscription: EventSubscription;
  const consumerName = () => `vmk-vmcp-events@${prefix}`;

  beforeEach(() => {
    prefix = testPrefix("events");
    redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
    publisher = createVmcpEventPublisher(redis, prefix);
    subscription = createEventSubscription({
      connect: () => createRedis(redisUrl, "consumer", consumerName()),
      queue: createKeys(prefix).eventsQueue,
      concurrency: 2,
      log: SILENT_LOGGER,
    });
  });
  afterEach(async () => {
    await subscription.close();
    await publisher.close();
    await closeRedis(redis);
    await flushPrefix(redisUrl, prefix);
    await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
  });

  it("opens its consumer with the first handler and hands each event to every handler until removed", async () => {
    expect(await openVmkConnections(redisUrl, (n) => n === consumerName())).toEqual([]);
    const first: string[] = [];
    const second: string[] = [];
    subscription.add((e) => void first.push(e.backendId));
    const removeSecond = subscription.add((e) => void second.push(e.backendId));
    await publisher.publish(closed("b1"));
    await waitFor("b1 to both handlers", () => first.length === 1 && second.length === 1, 15_000);
    removeSecond();
    await publisher.publish(closed("b2"));
    await waitFor("b2 to the first handler", () => first.length === 2, 15_000);
    expect(second).toEqual(["b1"]);
  });

  it("drops an event that does not match the schema, without retrying it", async () => {
    const seen: VmcpEvent[] = [];
    subscription.add((e) => void seen.push(e));
    const where = createKeys(prefix).eventsQueue;
    const raw = new Queue(where.name, { connection: redis, prefix: where.prefix });
    try {
      const job = await raw.add("backend.breaker_closed", { type: "backend.breaker_closed", v: 1 }, { attempts: 3 });
      await waitFor("invalid event failed", async () => (await raw.getJobState(job.id!)) === "failed", 15_000);
      expect((await raw.getJob(job.id!))!.attemptsMade).toBe(1);
      expect(seen).toEqual([]);
    } finally {
      await raw.close();
    }
  });

  it("closes its consumer and connection, and starts nothing for a handler added afterwards", async () => {
    subscription.add(() => {});
    await waitFor("consumer connected", async () => (await openVmkConnections(redisUrl, (n) => n === consumerName())).length > 0, 5_000);
    await subscription.close();
    subscription.add(() => {});
    await sleep(200);
    expect(await openVmkConnections(redisUrl, (n) => n === consumerName())).toEqual([]);
  });
});
