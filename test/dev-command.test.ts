import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { REDIS_SERVER_SETTINGS } from "@vmcp-keepalive/shared";
import { waitFor } from "@vmcp-keepalive/testkit";
import { startProgram } from "./helpers/processes.js";

/** The README's first command brings the demo up, keepalives visibly flow, and it leaves nothing running. */
describe("the dev command (README quick start)", () => {
  it("starts embedded Redis, scheduler, worker, demo backend and vMCP; keepalives flow; stops cleanly", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmk-dev-"));
    const env: NodeJS.ProcessEnv = { REDIS_URL: "" };
    const dev = startProgram("dev", ["--duration", "14s", "--interval", "2s", "--sessions", "3", "--dir", dir], env);
    // The embedded server runs the Redis settings vmcp-keepalive ships.
    await waitFor("the embedded redis-server", async () => /embedded redis-server started on (redis:\/\/\S+)/.test(dev.output()), 20_000, 50);
    const redis = new Redis(/embedded redis-server started on (redis:\/\/\S+)/.exec(dev.output())![1]!);
    try {
      for (const [name, value] of Object.entries(REDIS_SERVER_SETTINGS)) expect(await redis.config("GET", name)).toEqual([name, value]);
    } finally {
      redis.disconnect();
    }
    const code = await dev.exited();
    const out = dev.output();
    expect(code, out).toBe(0);
    const redisLine = /embedded redis-server started on redis:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    expect(redisLine, out).not.toBeNull();
    expect(out).toContain("demo vMCP registered 3 sessions");
    expect(out).toContain("pnpm exec vmcp-keepalive status --config");
    const flowing = [...out.matchAll(/keepalives flowing: (\d+) pings received by the backend; 3 active pairs \((\d+) last ok\)/g)];
    expect(flowing.length, out).toBeGreaterThanOrEqual(1);
    expect(Number(flowing.at(-1)![1])).toBeGreaterThanOrEqual(6);
    expect(Number(flowing.at(-1)![2])).toBe(3);
    expect(out).toContain("stopped; nothing left running");
    // The embedded redis-server is gone.
    const port = Number(redisLine![1]);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(false);
      });
      socket.once("error", () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});
