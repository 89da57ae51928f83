import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createKeepAliveFetch, type KeepAliveFetch } from "../src/protocol/keep-alive-fetch.js";

/** A plain HTTP server that counts connections and lets a test decide per request what happens. */
async function startServer(handle: (nthOnSocket: number, socket: Socket) => "ok" | "destroy"): Promise<{ url: string; connections: () => number; server: Server }> {
  let connections = 0;
  const perSocket = new WeakMap<Socket, number>();
  const server = createServer((req, res) => {
    const socket = req.socket;
    const n = (perSocket.get(socket) ?? 0) + 1;
    perSocket.set(socket, n);
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      if (handle(n, socket) === "destroy") {
        socket.destroy();
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "x-seen-session": String(req.headers["mcp-session-id"] ?? "") });
      res.end(JSON.stringify({ echo: body }));
    });
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mcp`, connections: () => connections, server };
}

describe("keep-alive fetch (the HTTP layer under the SDK transport)", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  const track = (pool: KeepAliveFetch, server: Server) => {
    cleanup.push(
      () => new Promise<void>((resolve) => server.close(() => resolve())),
      () => server.closeAllConnections(),
    );
    cleanup.push(() => pool.close());
  };

  it("reuses one connection for sequential requests and passes headers and body through", async () => {
    const srv = await startServer(() => "ok");
    const pool = createKeepAliveFetch();
    track(pool, srv.server);
    for (let i = 0; i < 50; i++) {
      const res = await pool.fetch(srv.url, { method: "POST", headers: new Headers({ "mcp-session-id": `s-${i}` }), body: `{"n":${i}}` });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-seen-session")).toBe(`s-${i}`);
      expect(await res.json()).toEqual({ echo: `{"n":${i}}` });
    }
    expect(srv.connections()).toBe(1);
  });

  it("retries once on a fresh connection when a reused idle connection is reset before any answer", async () => {
    // The server drops every second request on a connection, as a server closing an idle socket
    // while our next request is on its way does.
    const srv = await startServer((n) => (n >= 2 ? "destroy" : "ok"));
    const pool = createKeepAliveFetch();
    track(pool, srv.server);
    for (let i = 0; i < 3; i++) expect((await pool.fetch(srv.url, { method: "POST", body: "{}" })).status).toBe(200);
    expect(srv.connections()).toBe(3);
  });

  it("does not retry a reset on a fresh connection: the error reaches the caller with its code", async () => {
    const srv = await startServer(() => "destroy");
    const pool = createKeepAliveFetch();
    track(pool, srv.server);
    await expect(pool.fetch(srv.url, { method: "POST", body: "{}" })).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(srv.connections()).toBe(1);
  });

  it("aborts with the signal's reason, and close() drops pooled connections", async () => {
    const srv = await startServer(() => "ok");
    const pool = createKeepAliveFetch();
    track(pool, srv.server);
    const controller = new AbortController();
    controller.abort(new Error("gave up"));
    await expect(pool.fetch(srv.url, { method: "POST", body: "{}", signal: controller.signal })).rejects.toThrow("gave up");
    expect((await pool.fetch(srv.url, { method: "POST", body: "{}" })).status).toBe(200);
    pool.close();
    expect((await pool.fetch(srv.url, { method: "POST", body: "{}" })).status).toBe(200);
    expect(srv.connections()).toBe(2);
  });
});
