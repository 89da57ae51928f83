import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createBackendClient, KEEPALIVE_ID_PREFIX, type BackendClient } from "../src/internal.js";
import { callToolOnSession, openBackendSession, startMcpTestBackend, type McpTestBackend } from "@vmcp-keepalive/testkit";

let backend: McpTestBackend;
let client: BackendClient;
beforeAll(async () => {
  backend = await startMcpTestBackend({ idleTtlMs: 60_000 });
  client = createBackendClient({ maxResponseBytes: 65_536 });
});
afterAll(async () => {
  await client.close();
  await backend.stop();
});

describe("backend client against a real SDK server", () => {
  it("pings an existing session with a string id and the stored protocol version, without initialize", async () => {
    const session = await openBackendSession(backend.url);
    const before = backend.calls.length;
    const result = await client.call({ url: backend.url, sessionId: session.sessionId, protocolVersion: session.protocolVersion }, { method: "ping" }, 2_000);
    expect(result).toMatchObject({ ok: true, result: {} });
    // (The SDK client of openBackendSession may still be opening its GET stream: ignore GETs.)
    const calls = backend.calls.slice(before).filter((c) => c.method !== "GET");
    expect(calls.map((c) => c.method)).toEqual(["ping"]);
    expect(calls[0]).toMatchObject({ sessionId: session.sessionId, protocolVersion: session.protocolVersion });
    expect(typeof calls[0]!.id).toBe("string");
    expect(String(calls[0]!.id).startsWith(KEEPALIVE_ID_PREFIX)).toBe(true);
    // The session is still usable by its owner afterwards.
    expect((await callToolOnSession(backend.url, session, "echo", { text: "hi" })).text).toBe("hi");
  });

  it("uses a fresh id per call and works with JSON responses as well as SSE", async () => {
    const json = await startMcpTestBackend({ jsonResponse: true });
    try {
      const session = await openBackendSession(json.url);
      for (let i = 0; i < 3; i++) expect((await client.call({ url: json.url, sessionId: session.sessionId }, { method: "ping" }, 2_000)).ok).toBe(true);
      const ids = json.calls.filter((c) => c.method === "ping").map((c) => c.id);
      expect(new Set(ids).size).toBe(3);
    } finally {
      await json.stop();
    }
  });

  it("calls a tool on the session and reports isError as tool_error", async () => {
    const session = await openBackendSession(backend.url);
    expect(await client.call({ url: backend.url, sessionId: session.sessionId }, { method: "tools/call", tool: "noop", args: {} }, 2_000)).toMatchObject({
      ok: true,
    });
    expect(await client.call({ url: backend.url, sessionId: session.sessionId }, { method: "tools/call", tool: "fail", args: {} }, 2_000)).toMatchObject({
      ok: false,
      reason: "tool_error",
    });
  });

  it("maps an unknown session to session_not_found and a hang to timeout, without throwing", async () => {
    expect(await client.call({ url: backend.url, sessionId: "no-such-session" }, { method: "ping" }, 2_000)).toMatchObject({
      ok: false,
      reason: "session_not_found",
      httpStatus: 404,
    });
    const session = await openBackendSession(backend.url);
    backend.mode = "hang";
    try {
      const started = Date.now();
      const result = await client.call({ url: backend.url, sessionId: session.sessionId }, { method: "ping" }, 300);
      expect(result).toMatchObject({ ok: false, reason: "timeout" });
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      backend.mode = "ok";
    }
  });

  it("does not leak abort listeners over many calls (one deadline per call)", async () => {
    const session = await openBackendSession(backend.url);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      for (let i = 0; i < 200; i++) expect((await client.call({ url: backend.url, sessionId: session.sessionId }, { method: "ping" }, 2_000)).ok).toBe(true);
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.filter((w) => w === "MaxListenersExceededWarning")).toEqual([]);
  });

  it("reuses one keep-alive connection across calls, for JSON and for SSE answers", async () => {
    const json = await startMcpTestBackend({ jsonResponse: true });
    const pool = createBackendClient({ maxResponseBytes: 65_536 });
    try {
      for (const b of [backend, json]) {
        const session = await openBackendSession(b.url);
        const before = b.connectionCount();
        for (let i = 0; i < 30; i++) {
          const r = await pool.call({ url: b.url, sessionId: session.sessionId, protocolVersion: session.protocolVersion }, { method: "ping" }, 2_000);
          expect(r.ok).toBe(true);
        }
        // Reused, not one per call. A connection goes back to the pool a moment after its
        // answer was read (for SSE, when the stream ends just after the reply it carries), so
        // the next call may find it still busy once and open a second one; then both are reused.
        expect(b.connectionCount() - before).toBeLessThanOrEqual(2);
      }
    } finally {
      await pool.close();
      await json.stop();
    }
  });

  it("only ever POSTs: it never opens a GET stream nor ends the session with DELETE", async () => {
    const session = await openBackendSession(backend.url);
    const pool = createBackendClient({ maxResponseBytes: 65_536 });
    const seen: string[] = [];
    const probe = createServer((req, res) => {
      seen.push(req.method ?? "?");
      req.resume();
      req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: null, result: {} })));
    });
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    try {
      await pool.call({ url: backend.url, sessionId: session.sessionId }, { method: "ping" }, 2_000);
      await pool.call({ url: `http://127.0.0.1:${(probe.address() as AddressInfo).port}/mcp`, sessionId: "s" }, { method: "ping" }, 2_000);
      await pool.close();
      expect(seen).toEqual(["POST"]);
      expect(backend.calls.filter((c) => c.sessionId === session.sessionId && c.method === "DELETE")).toEqual([]);
      expect(backend.hasSession(session.sessionId)).toBe(true);
    } finally {
      probe.closeAllConnections();
      await new Promise((r) => probe.close(r));
    }
  });
});

/** A plain HTTP server that counts connections and lets a test decide per request what happens. */
async function startServer(handle: (nthOnSocket: number) => "ok" | "close" | "reset"): Promise<{ url: string; connections: () => number; open: () => number; server: Server }> {
  let connections = 0;
  let open = 0;
  const perSocket = new WeakMap<Socket, number>();
  const server = createServer((req, res) => {
    const socket = req.socket;
    const n = (perSocket.get(socket) ?? 0) + 1;
    perSocket.set(socket, n);
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const what = handle(n);
      if (what === "close") return void socket.destroy();
      if (what === "reset") return void socket.resetAndDestroy();
      const { id } = JSON.parse(body) as { id: string };
      res.writeHead(200, { "content-type": "application/json", "x-seen-session": String(req.headers["mcp-session-id"] ?? "") });
      res.end(JSON.stringify({ jsonrpc: "2.0", id, result: { seen: req.headers["mcp-session-id"] } }));
    });
  });
  server.on("connection", (socket: Socket) => {
    connections++;
    open++;
    socket.on("close", () => open--);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mcp`, connections: () => connections, open: () => open, server };
}

describe("backend client connection pool", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  const track = (pool: BackendClient, server: Server) => {
    cleanup.push(
      () => new Promise<void>((resolve) => server.close(() => resolve())),
      () => server.closeAllConnections(),
    );
    cleanup.push(() => pool.close());
  };
  const ping = { method: "ping" } as const;

  it("reuses one connection for sequential requests and passes the session header through", async () => {
    const srv = await startServer(() => "ok");
    const pool = createBackendClient({ maxResponseBytes: 65_536 });
    track(pool, srv.server);
    for (let i = 0; i < 50; i++) {
      const res = await pool.call({ url: srv.url, sessionId: `s-${i}` }, ping, 2_000);
      expect(res).toMatchObject({ ok: true, result: { seen: `s-${i}` } });
      // undici hands a connection back to its pool one event-loop turn after an answer (a server
      // that says keep-alive may still close); ticks are that far apart (Redis round trips).
      await new Promise((r) => setImmediate(r));
    }
    expect(srv.connections()).toBe(1);
  });

  it("calls issued back to back in one turn share two connections, not one per call", async () => {
    const srv = await startServer(() => "ok");
    const pool = createBackendClient({ maxResponseBytes: 65_536 });
    track(pool, srv.server);
    for (let i = 0; i < 50; i++) expect((await pool.call({ url: srv.url, sessionId: "s" }, ping, 2_000)).ok).toBe(true);
    expect(srv.connections()).toBeLessThanOrEqual(2);
  });

  for (const how of ["close", "reset"] as const) {
    it(`retries once on a fresh connection when a reused idle connection is cut (${how}) before any answer`, async () => {
      // The server drops every second request on a connection, as a server closing an idle socket
      // while our next request is on its way does.
      const srv = await startServer((n) => (n >= 2 ? how : "ok"));
      const pool = createBackendClient({ maxResponseBytes: 65_536 });
      track(pool, srv.server);
      for (let i = 0; i < 3; i++) {
        expect((await pool.call({ url: srv.url, sessionId: "s" }, ping, 2_000)).ok).toBe(true);
        await new Promise((r) => setImmediate(r)); // the connection goes back to the pool
      }
      expect(srv.connections()).toBe(3);
    });

    it(`does not retry a connection cut (${how}) on a fresh connection: the call fails as connection_error`, async () => {
      const srv = await startServer(() => how);
      const pool = createBackendClient({ maxResponseBytes: 65_536 });
      track(pool, srv.server);
      const r = await pool.call({ url: srv.url, sessionId: "s" }, ping, 2_000);
      expect(r).toMatchObject({ ok: false, reason: "connection_error" });
      if (!r.ok) expect(r.detail).toMatch(how === "reset" ? /^ECONNRESET: / : /^UND_ERR_SOCKET: /);
      expect(srv.connections()).toBe(1);
    });
  }

  it("close() drops its pooled connections; calls after close fail as connection_error", async () => {
    const srv = await startServer(() => "ok");
    const pool = createBackendClient({ maxResponseBytes: 65_536 });
    const other = createBackendClient({ maxResponseBytes: 65_536 });
    track(pool, srv.server);
    track(other, srv.server);
    expect((await pool.call({ url: srv.url, sessionId: "s" }, ping, 2_000)).ok).toBe(true);
    expect((await other.call({ url: srv.url, sessionId: "s" }, ping, 2_000)).ok).toBe(true);
    expect([srv.connections(), srv.open()]).toEqual([2, 2]);
    await pool.close();
    await vi.waitFor(() => expect(srv.open()).toBe(1));
    expect(await pool.call({ url: srv.url, sessionId: "s" }, ping, 2_000)).toMatchObject({ ok: false, reason: "connection_error" });
    // The other client's pooled connection is untouched and still reused.
    expect((await other.call({ url: srv.url, sessionId: "s" }, ping, 2_000)).ok).toBe(true);
    expect(srv.connections()).toBe(2);
  });
});
