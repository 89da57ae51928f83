import { describe, expect, it } from "vitest";
import { createVmcpClient } from "../src/index.js";

/* createVmcpClient refuses a Redis target it cannot use, naming the option, before connecting. */
describe("createVmcpClient options", () => {
  it("names what is missing in cluster and sentinel targets, and a shard count out of range", () => {
    expect(() => createVmcpClient({ replicaId: "r1" })).toThrow(/needs redisUrl, redis or connection/);
    expect(() => createVmcpClient({ replicaId: "r1", redis: { mode: "cluster", nodes: [] } })).toThrow(/redis\.nodes needs at least one seed node/);
    expect(() => createVmcpClient({ replicaId: "r1", redis: { mode: "sentinel", sentinels: [], name: "m" } })).toThrow(/redis\.sentinels and redis\.name/);
    expect(() => createVmcpClient({ replicaId: "r1", redis: { mode: "sentinel", sentinels: ["127.0.0.1:1"], name: "" } })).toThrow(/redis\.sentinels and redis\.name/);
    expect(() => createVmcpClient({ replicaId: "r1", redisUrl: "redis://127.0.0.1:1", shards: 0 })).toThrow(/shards must be an integer 1-1024, got 0/);
  });
});
