import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, inject, it } from "vitest";
import { flushPrefix, freePort, openBackendSession, startMcpTestBackend, testPrefix, waitFor } from "@vmcp-keepalive/testkit";
import { runCli, startProgram, waitForLog, writeConfig } from "./helpers/processes.js";

/**
 * An operator's mistakes end a program at once with exit code 2 and a message naming the key or
 * argument: bad config files, bad arguments, a port in use, Redis unreachable. Never a stack trace,
 * never a program that runs half-configured.
 */
const url = inject("redisUrl");
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function badFile(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "vmk-bad-")), "config.yaml");
  writeFileSync(path, text);
  return path;
}

describe("programs refuse bad input", () => {
  it.each(["scheduler", "worker"] as const)("%s exits 2 naming the key of a bad config file", async (program) => {
    const path = badFile("redis:\n  url: redis://127.0.0.1:1\nkeepalive:\n  interval: soon\nbackends:\n  - id: pw\n    url: not-a-url\n");
    const p = startProgram(program, ["--config", path]);
    expect(await p.exited()).toBe(2);
    expect(p.output()).toContain('keepalive.interval: "soon" is not a duration');
    expect(p.output()).toContain("backends[0].url: must be an http:// or https:// URL");
  });

  it("exits 2 without a config, with an unknown flag, and on an unset ${ENV}", async () => {
    const none = startProgram("worker", [], { KEEPALIVE_CONFIG: "" });
    expect(await none.exited()).toBe(2);
    expect(none.output()).toContain("no config file: pass --config FILE or set KEEPALIVE_CONFIG");
    const flag = startProgram("scheduler", ["--confg", "x.yaml"]);
    expect(await flag.exited()).toBe(2);
    expect(flag.output()).toMatch(/Unknown option '--confg'/);
    const env = startProgram("worker", ["--config", badFile("redis:\n  url: ${VMK_UNSET_URL}\n")], { VMK_UNSET_URL: "" });
    expect(await env.exited()).toBe(2);
    expect(env.output()).toContain("redis.url: environment variable VMK_UNSET_URL is not set");
  });

  it("start-up problems exit 2 with a message naming the key, never a stack trace", async () => {
    const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);
    // No redis.url: an empty config file, and one without the key.
    for (const text of ["", "keepalive:\n  interval: 5m\n"]) {
      const p = startProgram("worker", ["--config", badFile(text)], { REDIS_URL: "" });
      expect(await p.exited()).toBe(2);
      expect(p.output()).toContain("redis.url: not set");
      noStack(p.output());
    }
    // The ops HTTP port is taken (by a first scheduler on the same port).
    const prefix = testPrefix("port");
    const port = await freePort();
    const config = writeConfig({ redis: { url, prefix }, http: { port }, backends: [{ id: "pw", url: "http://127.0.0.1:9/mcp" }] });
    const first = startProgram("scheduler", ["--config", config]);
    cleanups.push(
      () => first.stop(),
      () => flushPrefix(url, prefix),
    );
    await waitForLog(first, "scheduler started");
    const second = startProgram("scheduler", ["--config", config]);
    expect(await second.exited()).toBe(2);
    expect(second.output()).toContain(`http.port (or HTTP_PORT): cannot listen on 127.0.0.1:${port} (the port is already in use)`);
    noStack(second.output());
    // CLI: a TTL the contract refuses, and Redis unreachable.
    const ttl = await runCli(["register", "--config", config, "--session", "s1", "--backend", "pw=bs-1", "--ttl", "31d"]);
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toContain("--ttl (sessionTtlMs:");
    noStack(ttl.stderr);
    const down = await runCli(["status", "--config", writeConfig({ redis: { url: `redis://127.0.0.1:${await freePort()}`, prefix } })]);
    expect(down.code).toBe(2);
    expect(down.stderr).toContain("redis.url: cannot reach Redis at redis://127.0.0.1:");
    expect(down.stderr).toContain("connection refused (no Redis listening there)");
    noStack(down.stderr);
  });

  it("the admin CLI exits 2 on bad arguments and an unknown backend, and registers and reports valid ones", async () => {
    const prefix = testPrefix("cli");
    const backend = await startMcpTestBackend({ idleTtlMs: 60_000 });
    const config = writeConfig({
      redis: { url, prefix },
      keepalive: { interval: "1s", timeout: "500ms" },
      backends: [
        { id: "pw", url: backend.url },
        { id: "search", url: backend.url, stateful: false },
      ],
    });
    const scheduler = startProgram("scheduler", ["--config", config]);
    const worker = startProgram("worker", ["--config", config]);
    cleanups.push(
      () => flushPrefix(url, prefix),
      () => backend.stop(),
      () => scheduler.stop(),
      () => worker.stop(),
    );

    const noSession = await runCli(["register", "--config", config, "--backend", "pw=1"]);
    expect(noSession.code).toBe(2);
    expect(noSession.stderr).toContain("register: --session ID is required");
    const unknown = await runCli(["register", "--config", config, "--session", "s1", "--backend", "nope=1"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown backend "nope" (configured: pw, search)');
    const badCmd = await runCli(["restart", "--config", config]);
    expect(badCmd.code).toBe(2);
    expect(badCmd.stderr).toContain('unknown command "restart"');

    await waitForLog(scheduler, "scheduler started");
    await waitForLog(worker, "worker started");
    const session = await openBackendSession(backend.url);
    const ok = await runCli(["register", "--config", config, "--session", "cli-1", "--backend", `pw=${session.sessionId}`, "--backend", "search", "--protocol-version", session.protocolVersion]);
    expect(ok).toMatchObject({ code: 0, stdout: "published session.registered for cli-1 (2 backends)\n" });
    await waitFor("a ping", () => backend.count("ping", session.sessionId) >= 1, 10_000);
    const status = await waitFor("status shows success", async () => {
      const r = await runCli(["status", "--json", "--config", config]);
      const rows = JSON.parse(r.stdout) as { sessionId: string; backendId: string; why: string; lastOutcome: string | null }[];
      return rows.find((x) => x.backendId === "pw")?.lastOutcome === "success" ? rows : undefined;
    });
    expect(status.map((r) => [r.sessionId, r.backendId, r.why])).toEqual([
      ["cli-1", "pw", "active"],
      ["cli-1", "search", "off: no_backend_session"],
    ]);
    const table = await runCli(["status", "--config", config]);
    expect(table.stdout).toMatch(/^SESSION\s+BACKEND\s+KEEPALIVE/);
    expect(table.stdout).toMatch(/cli-1\s+search\s+off: no_backend_session/);
    const end = await runCli(["end", "--config", config, "--session", "cli-1"]);
    expect(end.code).toBe(0);
    await waitFor("pairs gone", async () => JSON.parse((await runCli(["status", "--json", "--config", config])).stdout).length === 0, 10_000);
  });
});
