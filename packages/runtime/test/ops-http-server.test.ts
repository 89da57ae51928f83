import { Agent, request } from "node:http";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, httpListenFor, isLoopbackHost, parseConfig, startOpsHttpServer, withTimeout, type OpsHttpServer, type Readiness } from "../src/index.js";

const log = createLogger({ name: "ops-http-test", level: "silent" });

async function get(url: string, method = "GET"): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url, { method, signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

describe("ops HTTP server", () => {
  let server: OpsHttpServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("serves /healthz, /readyz (200/503 with the checks), /metrics, mounts, 404 and 405", async () => {
    let readiness: Readiness = { ready: true, checks: { redis: true, consumer: true } };
    const registry = new Registry();
    server = await startOpsHttpServer({
      host: "127.0.0.1",
      port: 0,
      registry,
      log,
      readiness: async () => readiness,
      mounts: [{ prefix: "/admin/things", handle: (req, res) => void res.writeHead(200).end(`mounted ${req.url}`) }],
    });
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 200, body: "ok\n" });
    expect(await get(`${server.url}/readyz`)).toMatchObject({ status: 200, body: `${JSON.stringify(readiness)}\n` });
    readiness = { ready: false, checks: { redis: false, consumer: true } };
    const notReady = await get(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.body)).toEqual(readiness);

    const metrics = await get(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.type).toBe(registry.contentType);
    expect(metrics.body).toContain("process_cpu_user_seconds_total");
    expect(metrics.body).toContain("nodejs_active_handles");
    // Gauges named *_total are dropped: promtool rejects them (their by-type siblings stay).
    expect(metrics.body).not.toContain("nodejs_active_handles_total");

    expect(await get(`${server.url}/admin/things/x?y=1`)).toMatchObject({ status: 200, body: "mounted /admin/things/x?y=1" });
    expect((await get(`${server.url}/admin/thingsmore`)).status).toBe(404);
    expect((await get(`${server.url}/elsewhere`)).status).toBe(404);
    expect((await get(`${server.url}/metrics`, "POST")).status).toBe(405);
  });

  it("answers 500 when a readiness check throws, and keeps serving", async () => {
    server = await startOpsHttpServer({ host: "127.0.0.1", port: 0, registry: new Registry(), log, readiness: () => Promise.reject(new Error("boom")) });
    expect((await get(`${server.url}/readyz`)).status).toBe(500);
    expect((await get(`${server.url}/healthz`)).status).toBe(200);
  });

  it("close() ends keep-alive connections and is idempotent", async () => {
    server = await startOpsHttpServer({ host: "127.0.0.1", port: 0, registry: new Registry(), log, readiness: async () => ({ ready: true, checks: {} }) });
    const url = server.url;
    // A keep-alive client holding its socket open must not keep close() waiting.
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      const req = request(`${url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      });
      req.on("error", reject);
      req.end();
    });
    expect(Object.values(agent.freeSockets).flat().length).toBe(1);
    const started = Date.now();
    await Promise.all([server.close(), server.close()]);
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    agent.destroy();
    server = undefined;
  });

  it("fails to start on a port in use with a usage error naming the key and the port", async () => {
    server = await startOpsHttpServer({ host: "127.0.0.1", port: 0, registry: new Registry(), log, readiness: async () => ({ ready: true, checks: {} }) });
    await expect(startOpsHttpServer({ host: "127.0.0.1", port: server.port, registry: new Registry(), log, readiness: async () => ({ ready: true, checks: {} }) })).rejects.toThrow(
      `http.port: cannot listen on 127.0.0.1:${server.port} (the port is already in use)`,
    );
  });
});

describe("ops HTTP helpers and config", () => {
  it("tells loopback hosts from others", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) expect(isLoopbackHost(h), h).toBe(false);
  });

  it("withTimeout resolves the fallback on timeout or rejection", async () => {
    expect(await withTimeout(new Promise<number>(() => {}), 20, -1)).toBe(-1);
    expect(await withTimeout(Promise.reject(new Error("x")), 1_000, -2)).toBe(-2);
    expect(await withTimeout(Promise.resolve(3), 1_000, -3)).toBe(3);
  });

  it("has loopback and side-by-side ports by default; HTTP_PORT / HTTP_HOST / ADMIN_* override", () => {
    const d = parseConfig({});
    expect(d.http).toEqual({ host: "127.0.0.1", port: undefined, schedulerPort: 9464, workerPort: 9465 });
    expect(d.admin).toEqual({ username: "admin", password: undefined });
    expect(httpListenFor(d, "scheduler")).toEqual({ host: "127.0.0.1", port: 9464, portKey: "http.scheduler_port" });
    expect(httpListenFor(d, "worker")).toEqual({ host: "127.0.0.1", port: 9465, portKey: "http.worker_port" });
    const e = parseConfig({ admin: { password: "${BOARD_PW}" } }, { HTTP_PORT: "0", HTTP_HOST: "0.0.0.0", BOARD_PW: "a-long-enough-secret", ADMIN_USERNAME: "ops" });
    expect(httpListenFor(e, "scheduler")).toEqual({ host: "0.0.0.0", port: 0, portKey: "http.port (or HTTP_PORT)" });
    expect(httpListenFor(e, "worker")).toEqual({ host: "0.0.0.0", port: 0, portKey: "http.port (or HTTP_PORT)" });
    expect(e.admin).toEqual({ username: "ops", password: "a-long-enough-secret" });
  });

  it("names the key or variable of a bad HTTP/admin setting", () => {
    expect(() => parseConfig({}, { HTTP_PORT: "http" })).toThrow(/HTTP_PORT \(http\.port\): expected number/);
    expect(() => parseConfig({ http: { port: 70_000 } })).toThrow(/http\.port/);
    expect(() => parseConfig({ admin: { password: "short" } })).toThrow(/admin\.password: must be at least 12 characters/);
    expect(() => parseConfig({ http: { hots: "x" } })).toThrow(/http: unknown key "hots"/);
  });
});
