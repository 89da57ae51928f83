import { describe, expect, it } from "vitest";
import { CLUSTER_SLOTS, createKeys, hashSlot, keyLayout, shardOfSession, shardTag } from "../src/index.js";

describe("hash slots", () => {
  it("computes Redis Cluster's slot (CRC16/XMODEM mod 16384), honouring hash tags", () => {
    // Reference values: CRC16/XMODEM("123456789") = 0x31C3; Redis `CLUSTER KEYSLOT foo` = 12182.
    expect(hashSlot("123456789")).toBe(0x31c3 % CLUSTER_SLOTS);
    expect(hashSlot("foo")).toBe(12182);
    expect(hashSlot("{user1000}.following")).toBe(hashSlot("user1000"));
    // An empty tag `{}` is not a tag: the whole key is hashed.
    expect(hashSlot("{}foo")).not.toBe(hashSlot(""));
  });
});

describe("key layout", () => {
  it("unsharded and untagged, is the original single-prefix layout", () => {
    const k = createKeys("vmk");
    expect([k.shards, k.tagged]).toEqual([1, false]);
    expect(k.pair("s1", "b1")).toBe("vmk:pair:s1:b1");
    expect(k.pairLock("s1", "b1")).toBe("vmk:lock:s1:b1");
    expect(k.session("s1")).toBe("vmk:session:s1");
    expect(k.sessionCount(0)).toBe("vmk:session-count");
    expect(k.backend("b1")).toBe("vmk:backend:b1");
    expect(k.keepaliveQueue(0)).toEqual({ name: "keepalive", prefix: "vmk" });
    expect(k.sessionsQueue).toEqual({ name: "vmcp-sessions", prefix: "vmk" });
    expect(k.eventsQueue).toEqual({ name: "vmcp-events", prefix: "vmk" });
    expect([k.sessionMessagesStream, k.sessionMessagesRejectedStream, k.sessionEventsStream]).toEqual(["vmk:session-messages", "vmk:session-messages:rejected", "vmk:session-events"]);
    expect(k.parsePairKey("vmk:pair:s1:b1")).toEqual({ sessionId: "s1", backendId: "b1" });
  });

  it("sharded: a session's keys, its pairs' locks and its shard's queue share one hash slot; backends and the two other queues have their own", () => {
    const k = createKeys("vmk", keyLayout(true, 16));
    expect([k.shards, k.tagged]).toEqual([16, true]);
    for (let i = 0; i < 200; i++) {
      const s = `session-${i}`;
      const shard = k.shardOf(s);
      const q = k.keepaliveQueue(shard);
      const slot = hashSlot(k.pair(s, "b"));
      // BullMQ's keys are `<prefix>:<queue name>:<suffix>`.
      for (const key of [k.session(s), k.pairLock(s, "b"), k.sessionMutex(s), k.sessionCount(shard), `${q.prefix}:${q.name}:wait`]) expect(hashSlot(key)).toBe(slot);
      expect(k.parsePairKey(k.pair(s, "b"))).toEqual({ sessionId: s, backendId: "b" });
    }
    expect(hashSlot(k.backend("b1"))).toBe(hashSlot("b1"));
    expect(k.keepaliveQueue(3).name).toBe("keepalive-3");
    expect(k.sessionsQueue.prefix).toBe("vmk:{sessions}");
    expect(k.eventsQueue.prefix).toBe("vmk:{events}");
    // The ingress stream, its rejected stream and the sessions queue share a slot; the event stream sits with the events queue.
    expect([k.sessionMessagesStream, k.sessionMessagesRejectedStream, k.sessionEventsStream]).toEqual([
      "vmk:{sessions}:session-messages",
      "vmk:{sessions}:session-messages:rejected",
      "vmk:{events}:session-events",
    ]);
    expect(hashSlot(k.sessionMessagesRejectedStream)).toBe(hashSlot(`${k.sessionsQueue.prefix}:vmcp-sessions:wait`));
    expect(k.parsePairKey("vmk:session:s1")).toBeUndefined();
  });

  it("spreads shards evenly over the slot range: 16 shards over 3 equal masters are 5/5/6", () => {
    const slots = Array.from({ length: 16 }, (_, i) => hashSlot(`{${shardTag(i, 16)}}`));
    slots.forEach((slot, i) => expect(Math.floor((slot * 16) / CLUSTER_SLOTS)).toBe(i));
    const perMaster = [0, 0, 0];
    for (const slot of slots) perMaster[Math.min(2, Math.floor(slot / Math.ceil(CLUSTER_SLOTS / 3)))]!++;
    expect(perMaster.sort()).toEqual([5, 5, 6]);
  });

  it("assigns sessions to shards evenly and stably", () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[shardOfSession(`vmcp-session-${i}`, 16)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(900);
    expect(shardOfSession("abc", 16)).toBe(Math.floor((hashSlot("abc") * 16) / CLUSTER_SLOTS));
    // Sequential ids spread evenly too (the high bits of CRC16; its low bits would not).
    const seq = new Array<number>(16).fill(0);
    for (let i = 0; i < 6_000; i++) seq[shardOfSession(`cl-${i}`, 16)]!++;
    expect(Math.max(...seq) / Math.min(...seq)).toBeLessThan(1.1);
    expect(shardOfSession("abc", 1)).toBe(0);
  });

  it("refuses a hash-tagged prefix where the layout tags keys, and a shard count out of range", () => {
    expect(() => createKeys("{vmk}", { shards: 4 })).toThrow(/no \{ \}/);
    expect(() => createKeys("{vmk}")).not.toThrow();
    expect(() => createKeys("vmk", { shards: 0 })).toThrow(RangeError);
    expect(() => createKeys("vmk", { shards: 4 }).keepaliveQueue(4)).toThrow(RangeError);
  });
});

describe("key patterns", () => {
  /** Redis glob matching for the patterns' only special character, `*`. */
  const matches = (pattern: string, key: string) => new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`, "s").test(key);

  it.each([
    ["standalone", createKeys("vmk")],
    ["standalone, a braced prefix", createKeys("{vmk}")],
    ["cluster, one shard", createKeys("vmk", keyLayout(true, 1))],
    ["16 shards", createKeys("vmk", keyLayout(true, 16))],
  ])("%s: every key matches the pattern of its kind and no other", (_, k) => {
    // Ids that look like the names of other kinds, and every shard.
    const ids = ["s1", "pair", "lock", "session", "keepalive", "keepalive-1", "sessions", "wait", ...Array.from({ length: 40 }, (_, i) => `x${i}`)];
    const kinds: [keyof typeof k.patterns, string][] = [];
    const queueKeys = (q: { prefix: string; name: string }) =>
      ["wait", "active", "meta", "events", "marker", "repeat", "repeat:ka:s1:b1", "1", "repeat:ka:pair:lock:1", ""].map((suffix) => `${q.prefix}:${q.name}:${suffix}`);
    for (const s of ids) {
      kinds.push(["session", k.session(s)], ["sessionMutex", k.sessionMutex(s)], ["backend", k.backend(s)]);
      for (const b of ids.slice(0, 8)) kinds.push(["pair", k.pair(s, b)], ["pairLock", k.pairLock(s, b)]);
    }
    for (let shard = 0; shard < k.shards; shard++) {
      kinds.push(["sessionCount", k.sessionCount(shard)]);
      for (const key of queueKeys(k.keepaliveQueue(shard))) kinds.push([key.endsWith(":wait") ? "keepaliveWaitLists" : "keepaliveQueues", key]);
    }
    kinds.push(["reaperPass", k.reaperPass]);
    for (const key of queueKeys(k.sessionsQueue)) kinds.push(["sessionsQueue", key]);
    for (const key of queueKeys(k.eventsQueue)) kinds.push(["eventsQueue", key]);
    const streams = [k.sessionMessagesStream, k.sessionMessagesRejectedStream, k.sessionEventsStream];
    for (const [kind, key] of kinds) {
      const hits = Object.entries(k.patterns)
        .filter(([, pattern]) => matches(pattern, key))
        .map(([name]) => name);
      // A keepalive queue's wait list is also one of its queue's keys.
      expect(hits, key).toEqual(kind === "keepaliveWaitLists" ? ["keepaliveQueues", "keepaliveWaitLists"] : [kind]);
      // The reaper's SCAN takes a session id only from a session hash's key.
      expect(k.parseSessionKey(key) !== undefined, key).toBe(kind === "session");
    }
    for (const key of streams)
      expect(
        Object.values(k.patterns).filter((p) => matches(p, key)),
        key,
      ).toEqual([]);
    expect(k.pairPattern).toBe(k.patterns.pair);
  });

  it("tagged: a shard's `{*}` stands for its hash tag", () => {
    const k = createKeys("vmk", keyLayout(true, 16));
    expect(k.patterns).toMatchObject({
      pair: "vmk:{*}:pair:*:*",
      pairLock: "vmk:{*}:lock:*:*",
      backend: "vmk:backend:{*}",
      keepaliveQueues: "vmk:{*}:keepalive-*:*",
      sessionsQueue: "vmk:{sessions}:vmcp-sessions:*",
    });
    expect(createKeys("vmk").patterns).toMatchObject({ pair: "vmk:pair:*:*", keepaliveQueues: "vmk:keepalive:*", keepaliveWaitLists: "vmk:keepalive:wait", eventsQueue: "vmk:vmcp-events:*" });
  });
});
