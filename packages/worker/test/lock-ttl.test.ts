import { describe, expect, it } from "vitest";
import { parseConfig } from "@vmcp-keepalive/runtime";
import { lockTtlMs } from "../src/internal.js";

describe("worker pair-lock TTL (lock.ttl)", () => {
  const base = { redis: { url: "redis://127.0.0.1:6379" }, keepalive: { interval: "1m", timeout: "5s" } };

  it("defaults to the call timeout + 1 s, so the lock outlives the call", () => {
    expect(lockTtlMs(parseConfig(base))).toBe(6_000);
  });

  it("follows lock.ttl when set (shorter than the timeout is allowed: writes are epoch-fenced)", () => {
    expect(lockTtlMs(parseConfig({ ...base, lock: { ttl: "300ms" } }))).toBe(300);
    expect(lockTtlMs(parseConfig({ ...base, lock: { ttl: "20s" } }))).toBe(20_000);
  });

  it("rejects a TTL below 100 ms, naming the key", () => {
    expect(() => parseConfig({ ...base, lock: { ttl: "10ms" } })).toThrow(/lock\.ttl/);
  });
});
