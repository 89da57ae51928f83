import { describe, expect, it } from "vitest";
import { createVmcpClient, parseHostPort } from "../src/index.js";

/* createVmcpClient refuses a Redis target it cannot use, naming the option, before connecting. */
describe("createVmcpClient options", () => {
  it("names what is missing in cluster and sentinel targets, and a shard count out of range", () => {
    expect(() => createVmcpClient({ replicaId: "r1" })).toThrow(/needs redisUrl, redis or connection/);
    expect(() => createVmcpClient({ replicaId: "r1", redis: { mode: "cluster", nodes: [] } })).toThrow(/redis\.nodes needs at least one seed node/);
    expect(() => createVmcpClient({ replicaId: "r1", redis: { mode: "sentinel", sentinels: [], name: "m" } })).toThrow(/redis\.sentinels and redis\.name/);
    expect(() => createVmcpClient({ replicaId: "r1", redis: { mode: "sentinel", sentinels: ["127.0.0.1:1"], name: "" } })).toThrow(/redis\.sentinels and redis\.name/);
    expect(() => createVmcpClient({ replicaId: "r1", redisUrl: "redis://127.0.0.1:1", shards: 0 })).toThrow(/shards must be an integer 1-1024, got 0/);
    expect(() => createVmcpClient({ replicaId: "r1", redisUrl: "redis://127.0.0.1:1", transport: "kafka" as "stream" })).toThrow(
      'createVmcpClient: transport must be "queue" or "stream", got "kafka"',
    );
  });
});

describe("parseHostPort", () => {
  it("reads host:port and redis URLs (default port 6379), and names a bad entry", () => {
    expect(parseHostPort("10.0.0.5:26379")).toEqual({ host: "10.0.0.5", port: 26379 });
    expect(parseHostPort("redis://:secret@redis-1:7000")).toEqual({ host: "redis-1", port: 7000 });
    expect(parseHostPort("rediss://redis-1")).toEqual({ host: "redis-1", port: 6379 });
    expect(parseHostPort("[::1]:6379")).toEqual({ host: "::1", port: 6379 });
    expect(() => parseHostPort("nope")).toThrow('"nope" is not host:port');
    expect(() => parseHostPort("h:70000")).toThrow(/is not host:port/);
  });
});
