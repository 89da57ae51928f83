import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { errors } from "undici";
import { classifyError, classifyHttpStatus, createBackendClient, KEEPALIVE_ID_PREFIX, type McpCallResult } from "../src/internal.js";
import { freePort, openBackendSession, startMcpTestBackend, type McpTestBackend, type OpenedSession } from "@vmcp-keepalive/testkit";

/*
 * Outcome classification against REAL responses: a real SDK Streamable-HTTP server in its
 * failure modes, a closed port, and tiny raw HTTP servers that answer the way broken backends
 * and proxies do (garbage bodies, 403). Nothing here mocks the protocol or HTTP.
 */

const client = createBackendClient({ maxResponseBytes: 65_536 });
afterAll(() => client.close());

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function backend(options: Parameters<typeof startMcpTestBackend>[0] = {}): Promise<{ b: McpTestBackend; s: OpenedSession }> {
  const b = await startMcpTestBackend(options);
  cleanups.push(() => b.stop());
  const s = await openBackendSession(b.url, options.requireHeader ? { [options.requireHeader.name]: options.requireHeader.value } : {});
  return { b, s };
}

/** A raw HTTP server answering every request with `status`, `contentType` and `body`. */
async function rawServer(status: number, contentType: string, body: string): Promise<string> {
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(status, { "content-type": contentType }).end(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

/** A raw HTTP server that reads our request's JSON-RPC id and lets `answer` write the response. */
async function answeringServer(answer: (id: string, res: ServerResponse) => void): Promise<string> {
  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d: Buffer) => (raw += d.toString()));
    req.on("end", () => answer((JSON.parse(raw) as { id: string }).id, res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
}

const ping = { method: "ping" } as const;
const tool = (name: string) => ({ method: "tools/call", tool: name, args: {} }) as const;

function failed(r: McpCallResult) {
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error("unreachable");
  return r;
}

describe("backend client + classify against real responses", () => {
  it("success: ping answers on the existing session with a string id", async () => {
    const { b, s } = await backend();
    const r = await client.call({ url: b.url, sessionId: s.sessionId, protocolVersion: s.protocolVersion }, ping, 2_000);
    expect(r.ok).toBe(true);
    const call = b.calls.find((c) => c.method === "ping");
    expect(call?.sessionId).toBe(s.sessionId);
    expect(String(call?.id)).toMatch(new RegExp(`^${KEEPALIVE_ID_PREFIX}`));
    expect(call?.protocolVersion).toBe(s.protocolVersion);
  });

  it("timeout: a hanging backend", async () => {
    const { b, s } = await backend();
    b.mode = "hang";
    const r = failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 300));
    expect(r.reason).toBe("timeout");
    expect(r.latencyMs).toBeGreaterThanOrEqual(250);
  });

  it("timeout: a backend slower than the call timeout (delayMs)", async () => {
    const { b, s } = await backend();
    b.delayMs = 1_500;
    expect(failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 300)).reason).toBe("timeout");
  });

  it("connection_error: a refused connection (closed port)", async () => {
    const port = await freePort();
    const r = failed(await client.call({ url: `http://127.0.0.1:${port}/mcp`, sessionId: "s" }, ping, 2_000));
    expect(r.reason).toBe("connection_error");
  });

  it("connection_error: a backend that resets the connection", async () => {
    const { b, s } = await backend();
    b.mode = "reset";
    expect(failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 2_000)).reason).toBe("connection_error");
  });

  it("http_5xx: 503 from an overloaded backend, 500 from a crashing ping handler", async () => {
    const { b, s } = await backend();
    b.mode = "http_503";
    const r = failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 2_000));
    expect(r.reason).toBe("http_5xx");
    expect(r.httpStatus).toBe(503);
    b.mode = "ok";
    b.pingFailsHttp500 = true;
    const r2 = failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 2_000));
    expect([r2.reason, r2.httpStatus]).toEqual(["http_5xx", 500]);
  });

  it("unauthorized: 401 without the required header; success with it", async () => {
    const requireHeader = { name: "authorization", value: "Bearer right" };
    const { b, s } = await backend({ requireHeader });
    const r = failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 2_000));
    expect([r.reason, r.httpStatus]).toEqual(["unauthorized", 401]);
    const ok = await client.call({ url: b.url, sessionId: s.sessionId, headers: { authorization: "Bearer right" } }, ping, 2_000);
    expect(ok.ok).toBe(true);
  });

  it("unauthorized: 403 from a gateway", async () => {
    const url = await rawServer(403, "application/json", JSON.stringify({ error: "forbidden" }));
    const r = failed(await client.call({ url, sessionId: "s" }, ping, 2_000));
    expect([r.reason, r.httpStatus]).toEqual(["unauthorized", 403]);
  });

  it("http_4xx: another client error (429)", async () => {
    const url = await rawServer(429, "application/json", JSON.stringify({ error: "slow down" }));
    const r = failed(await client.call({ url, sessionId: "s" }, ping, 2_000));
    expect([r.reason, r.httpStatus]).toEqual(["http_4xx", 429]);
  });

  it("session_not_found: 404 for a session the backend does not know (expired)", async () => {
    const { b } = await backend();
    const r = failed(await client.call({ url: b.url, sessionId: "gone-session" }, ping, 2_000));
    expect([r.reason, r.httpStatus]).toEqual(["session_not_found", 404]);
  });

  it("session_not_found: a session dropped by the backend's idle TTL", async () => {
    const { b, s } = await backend({ idleTtlMs: 200 });
    await new Promise((r) => setTimeout(r, 700));
    expect(b.hasSession(s.sessionId)).toBe(false);
    expect(failed(await client.call({ url: b.url, sessionId: s.sessionId }, ping, 2_000)).reason).toBe("session_not_found");
  });

  it("method_not_found: ping not implemented answers JSON-RPC -32601", async () => {
    const { b, s } = await backend({ pingSupported: false });
    const r = failed(await client.call({ url: b.url, sessionId: s.sessionId, protocolVersion: s.protocolVersion }, ping, 2_000));
    expect(r.reason).toBe("method_not_found");
    expect(r.detail).toMatch(/-32601/);
    // The same session still answers a tool call: only ping is missing.
    expect((await client.call({ url: b.url, sessionId: s.sessionId }, tool("noop"), 2_000)).ok).toBe(true);
  });

  it("tool_error: a tool result with isError", async () => {
    const { b, s } = await backend();
    const r = failed(await client.call({ url: b.url, sessionId: s.sessionId }, tool("fail"), 2_000));
    expect(r.reason).toBe("tool_error");
  });

  it("tool_error: an unknown tool (the SDK server answers it as an isError result)", async () => {
    const { b, s } = await backend();
    expect(failed(await client.call({ url: b.url, sessionId: s.sessionId }, tool("no-such-tool"), 2_000)).reason).toBe("tool_error");
  });

  it("protocol_error: a JSON-RPC error other than -32601 (internal error -32603)", async () => {
    const url = await answeringServer((id, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32603, message: "boom" } })));
    const r = failed(await client.call({ url, sessionId: "s" }, ping, 2_000));
    expect(r.reason).toBe("protocol_error");
    expect(r.detail).toMatch(/-32603/);
  });

  it("protocol_error: 200 with a garbage JSON body (a deliberately broken backend)", async () => {
    const url = await rawServer(200, "application/json", "{this is not json");
    const r = failed(await client.call({ url, sessionId: "s" }, ping, 2_000));
    expect(r.reason).toBe("protocol_error");
  });

  it("protocol_error: 200 with valid JSON that is not JSON-RPC", async () => {
    const url = await rawServer(200, "application/json", JSON.stringify({ hello: "world" }));
    const r = failed(await client.call({ url, sessionId: "s" }, ping, 2_000));
    expect(r.reason).toBe("protocol_error");
  });

  it("protocol_error: 200 with an HTML page (a captive proxy)", async () => {
    const url = await rawServer(200, "text/html", "<html>login</html>");
    expect(failed(await client.call({ url, sessionId: "s" }, ping, 2_000)).reason).toBe("protocol_error");
  });

  it("protocol_error: an event stream that ends without our answer, at once rather than at the timeout", async () => {
    const url = await rawServer(200, "text/event-stream", `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: {} })}\n\n`);
    const r = failed(await client.call({ url, sessionId: "s" }, ping, 5_000));
    expect(r.reason).toBe("protocol_error");
    expect(r.latencyMs).toBeLessThan(2_000);
  });

  it("success: an event stream that opens with a priming event (an id and empty data, as MCP 2025-11-25 servers send)", async () => {
    const url = await answeringServer((id, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`id: prime-1\ndata: \n\nevent: message\nid: ev-2\ndata: ${JSON.stringify({ result: {}, jsonrpc: "2.0", id })}\n\n`);
    });
    expect(await client.call({ url, sessionId: "s" }, ping, 2_000)).toMatchObject({ ok: true });
  });

  it("success: an event stream left open after our answer returns at once; the stream is cut after its grace", async () => {
    let closed = false;
    const url = await answeringServer((id, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" }).write(`data: ${JSON.stringify({ jsonrpc: "2.0", id, result: {} })}\n\n`);
      res.on("close", () => (closed = true));
    });
    const graceful = createBackendClient({ maxResponseBytes: 65_536, streamGraceMs: 1_000 });
    cleanups.push(() => graceful.close());
    const r = await graceful.call({ url, sessionId: "s" }, ping, 5_000);
    expect(r).toMatchObject({ ok: true });
    expect(r.latencyMs).toBeLessThan(800);
    expect(closed).toBe(false);
    await vi.waitFor(() => expect(closed).toBe(true), { timeout: 5_000 });
  });

  it("classifyError reads the code of undici's errors and Node's system errors, not their text", () => {
    const system = (code: string) => Object.assign(new Error("whatever the text"), { code });
    const cases: [unknown, string][] = [
      [new errors.HeadersTimeoutError(), "timeout"],
      [new errors.BodyTimeoutError(), "timeout"],
      [new errors.ConnectTimeoutError(), "connection_error"],
      [new errors.SocketError("other side closed"), "connection_error"],
      [new errors.ClientDestroyedError(), "connection_error"],
      [system("ECONNREFUSED"), "connection_error"],
      [new Error("wrapped", { cause: system("ENOTFOUND") }), "connection_error"],
      [new errors.ResponseExceededMaxSizeError(), "protocol_error"],
      [new SyntaxError("Unexpected token"), "protocol_error"],
      [new TypeError("fetch failed"), "protocol_error"],
    ];
    expect(cases.map(([err]) => classifyError(err, 65_536).reason)).toEqual(cases.map(([, reason]) => reason));
    expect(classifyError(new errors.ResponseExceededMaxSizeError(), 1_024).detail).toContain("larger than 1024 bytes");
  });

  it("classifyHttpStatus covers each status class", () => {
    expect([404, 401, 403, 400, 429, 500, 502, 503, 302].map(classifyHttpStatus)).toEqual([
      "session_not_found",
      "unauthorized",
      "unauthorized",
      "http_4xx",
      "http_4xx",
      "http_5xx",
      "http_5xx",
      "http_5xx",
      "protocol_error",
    ]);
  });
});
