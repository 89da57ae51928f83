import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createBackendClient, type BackendClient } from "../src/internal.js";

/*
 * What a hostile or broken backend (or a proxy in front of it) can send back: bodies of any size,
 * and echoes of the request — headers included, where the configured credential travels.
 */
const SECRET = "Bearer s3cr3t-token-0123456789";
const servers: Server[] = [];
const pools: BackendClient[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => handler(req, res));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

/** Streams `total` bytes in 64 KiB chunks of one shared buffer, honouring backpressure (the server holds ~nothing). */
function stream(res: ServerResponse, contentType: string, total: number): void {
  const chunk = Buffer.alloc(65_536, contentType.includes("event-stream") ? "a" : " ");
  res.writeHead(200, { "content-type": contentType });
  if (contentType.includes("event-stream")) res.write("data: ");
  let sent = 0;
  const more = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once("drain", more);
    }
    res.end();
  };
  res.on("close", () => (sent = total));
  more();
}

const pool = (maxResponseBytes = 65_536) => {
  const p = createBackendClient({ maxResponseBytes });
  pools.push(p);
  return p;
};
const target = (url: string) => ({ url, sessionId: "s-1", protocolVersion: "2025-06-18", headers: { authorization: SECRET } });

describe("backend answers the worker must survive", () => {
  it("40 calls answered with 25 MB bodies: each is cut at the cap as protocol_error, memory stays flat", async () => {
    const url = await serve((_req, res) => stream(res, "application/json", 25 * 1024 * 1024));
    const client = pool(65_536);
    global.gc?.();
    const before = process.memoryUsage().rss;
    const results = await Promise.all(Array.from({ length: 40 }, () => client.call(target(url), { method: "ping" }, 10_000)));
    const grew = process.memoryUsage().rss - before;
    for (const r of results) expect(r).toMatchObject({ ok: false, reason: "protocol_error", detail: expect.stringContaining("larger than 65536 bytes") });
    // Uncapped, the 40 bodies alone are 1 GB in this process.
    expect(grew).toBeLessThan(200 * 1024 * 1024);
    console.log(`40 x 25 MB answers: RSS grew ${Math.round(grew / 1024 / 1024)} MB`);
  });

  it("a reply stream (SSE) past the cap ends the call at once as protocol_error, not at the timeout", async () => {
    const url = await serve((_req, res) => stream(res, "text/event-stream", 25 * 1024 * 1024));
    const r = await pool(65_536).call(target(url), { method: "ping" }, 10_000);
    expect(r).toMatchObject({ ok: false, reason: "protocol_error" });
    expect(r.latencyMs).toBeLessThan(5_000);
  });

  it("an error body that echoes the request is not logged; its size is", async () => {
    const url = await serve((req, res) => {
      res.writeHead(500, { "content-type": "text/plain" }).end(`upstream failed; request headers were: ${JSON.stringify(req.headers)}`);
    });
    const r = await pool().call(target(url), { method: "ping" }, 5_000);
    expect(r).toMatchObject({ ok: false, reason: "http_5xx", httpStatus: 500 });
    if (r.ok) return;
    expect(r.detail).toMatch(/^HTTP 500 \(body of \d+ bytes not logged\)$/);
    expect(r.detail).not.toContain("s3cr3t");
  });

  it("keeps a JSON-RPC error's code and message, with the configured credential redacted wherever it appears", async () => {
    const url = await serve((req, res) => {
      const echo = { jsonrpc: "2.0", id: null, error: { code: -32603, message: `bad auth ${String(req.headers["authorization"])}` } };
      res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify(echo));
    });
    const r = await pool().call(target(url), { method: "ping" }, 5_000);
    expect(r).toMatchObject({ ok: false, reason: "http_5xx" });
    if (r.ok) return;
    expect(r.detail).toBe("HTTP 502: JSON-RPC -32603 bad auth [redacted]");
  });
});
