import { describe, expect, it } from "vitest";
import { KeyedSerializer, messageOf, parseAutoClaimReply, parseEntries, parsePendingCounts, parseReadReply, Slots, truncateUtf8 } from "../src/registrations/stream-entries.js";

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("stream replies", () => {
  it("reads XREADGROUP's reply, and nothing from a timeout", () => {
    const reply = [
      [
        "vmk:session-messages",
        [
          ["1-0", ["message", "{}"]],
          ["2-0", ["message", "x", "other", "y"]],
        ],
      ],
    ];
    expect(parseReadReply(reply)).toEqual([
      { id: "1-0", fields: { message: "{}" } },
      { id: "2-0", fields: { message: "x", other: "y" } },
    ]);
    expect(parseReadReply(null)).toEqual([]);
  });

  it("reads XAUTOCLAIM's reply: cursor, entries (a deleted one has no fields), deleted ids", () => {
    expect(
      parseAutoClaimReply([
        "5-0",
        [
          ["3-0", ["message", "m"]],
          ["4-0", null],
        ],
        ["9-0"],
      ]),
    ).toEqual({
      cursor: "5-0",
      entries: [
        { id: "3-0", fields: { message: "m" } },
        { id: "4-0", fields: null },
      ],
      deleted: ["9-0"],
    });
    expect(parseAutoClaimReply(["0-0", []])).toEqual({ cursor: "0-0", entries: [], deleted: [] });
    expect(parseEntries("garbage")).toEqual([]);
  });

  it("reads delivery counts from extended XPENDING", () => {
    expect(
      parsePendingCounts([
        ["1-0", "s-a", 1200, 3],
        ["2-0", "s-a", 10, 1],
      ]),
    ).toEqual(
      new Map([
        ["1-0", 3],
        ["2-0", 1],
      ]),
    );
  });
});

describe("an entry's message", () => {
  it("is its `message` field; without one the detail names the fields it has", () => {
    expect(messageOf({ id: "1-0", fields: { message: "{}" } }, "message")).toEqual({ ok: true, payload: "{}" });
    expect(messageOf({ id: "1-0", fields: { msg: "{}", data: "" } }, "message")).toEqual({ ok: false, detail: 'entry has no "message" field (it has "msg", "data")' });
    expect(messageOf({ id: "1-0", fields: {} }, "message")).toEqual({ ok: false, detail: 'entry has no "message" field (it has none)' });
  });

  it("is cut to a byte limit without splitting a character", () => {
    expect(truncateUtf8("abc", 10)).toBe("abc");
    expect(truncateUtf8("aé", 2)).toBe("a");
    expect(Buffer.byteLength(truncateUtf8("€".repeat(100), 50))).toBeLessThanOrEqual(50);
  });
});

describe("KeyedSerializer", () => {
  it("runs one key's tasks in order, one at a time, and other keys' tasks meanwhile", async () => {
    const serializer = new KeyedSerializer();
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    const task = (name: string) => () =>
      new Promise<void>((resolve) => {
        log.push(`start ${name}`);
        gates.set(name, () => {
          log.push(`end ${name}`);
          resolve();
        });
      });
    const all = [serializer.run("s1", task("a1")), serializer.run("s1", task("a2")), serializer.run("s2", task("b1"))];
    await tick();
    expect(log).toEqual(["start a1", "start b1"]);
    gates.get("a1")!();
    await tick();
    expect(log).toEqual(["start a1", "start b1", "end a1", "start a2"]);
    gates.get("a2")!();
    gates.get("b1")!();
    await Promise.all(all);
    await tick();
    expect(serializer.size).toBe(0);
  });

  it("goes on with a key's next task after one fails", async () => {
    const serializer = new KeyedSerializer();
    const failed = serializer.run("s", () => Promise.reject(new Error("boom")));
    const next = serializer.run("s", () => Promise.resolve());
    await expect(failed).rejects.toThrow("boom");
    await expect(next).resolves.toBeUndefined();
  });
});

describe("Slots", () => {
  it("bounds what runs at once and wakes a waiter on release", async () => {
    const slots = new Slots(2);
    await slots.acquire();
    await slots.acquire();
    expect(slots.free).toBe(0);
    let third = false;
    const waiting = slots.acquire().then(() => (third = true));
    await tick();
    expect(third).toBe(false);
    slots.release();
    await waiting;
    expect(slots.inUse).toBe(2);
    let free = false;
    const whenFree = slots.whenFree().then(() => (free = true));
    await tick();
    expect(free).toBe(false);
    slots.release();
    await whenFree;
    expect(slots.free).toBe(1);
    let idle = false;
    const whenIdle = slots.idle().then(() => (idle = true));
    await tick();
    expect(idle).toBe(false);
    slots.release();
    await whenIdle;
    expect(slots.inUse).toBe(0);
  });

  it("refuses a size that is not a positive integer", () => {
    expect(() => new Slots(0)).toThrow("slots must be a positive integer, got 0");
  });
});
