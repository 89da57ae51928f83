import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { PingRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

/** One request the backend saw, in arrival order. */
export interface RecordedCall {
  readonly at: number;
  /** `Mcp-Session-Id` of the request (undefined for initialize). */
  readonly sessionId: string | undefined;
  readonly method: string;
  readonly id: string | number | undefined;
  /** Tool name for tools/call. */
  readonly tool: string | undefined;
  readonly protocolVersion: string | undefined;
  /** HTTP status the backend answered with when it answered itself (404, 401, 5xx); else undefined. */
  readonly status: number | undefined;
}

/**
 * Modes an operator's backend can be in, switched at run time:
 * - `ok`: serves MCP normally;
 * - `http_503`: every request answers 503 (an overloaded proxy);
 * - `reset`: every connection is destroyed (a crashing backend): connection_error;
 * - `hang`: requests are never answered: timeout.
 */
export type BackendMode = "ok" | "http_503" | "reset" | "hang";

export interface McpTestBackendOptions {
  /** @defaultValue a free loopback port */
  port?: number;
  /** Interface to listen on (containers need 0.0.0.0). @defaultValue "127.0.0.1" */
  host?: string;
  /** Sessions idle longer than this are dropped (404 afterwards). @defaultValue no expiry */
  idleTtlMs?: number;
  /** Which requests reset the idle timer: any, or only tool calls (Playwright MCP's browser). @defaultValue "any" */
  idleResetBy?: "any" | "tools";
  /** Answer `ping` with -32601 (handler removed from the SDK server). @defaultValue true */
  pingSupported?: boolean;
  /** Answer ping (only ping) with HTTP 500, tools still work. @defaultValue false */
  pingFailsHttp500?: boolean;
  /** Delay before every answer, ms. @defaultValue 0 */
  delayMs?: number;
  /** Require this header (e.g. `authorization: Bearer x`); else 401. */
  requireHeader?: { name: string; value: string };
  /**
   * Authenticate every user, as the MCP authorization rules ask: `initialize` needs an
   * `Authorization` header, the session is bound to it, and every later request of the session
   * without that same header (or with a revoked one) answers 401. @defaultValue false
   */
  bindAuthorization?: boolean;
  /** Answer JSON instead of SSE streams. @defaultValue false */
  jsonResponse?: boolean;
  name?: string;
}

export interface McpTestBackend {
  readonly url: string;
  readonly port: number;
  readonly calls: RecordedCall[];
  mode: BackendMode;
  delayMs: number;
  pingFailsHttp500: boolean;
  setPingSupported(supported: boolean): void;
  hasSession(sessionId: string): boolean;
  sessionCount(): number;
  /** Calls with this method (and session, when given). */
  count(method: string, sessionId?: string): number;
  /** Most requests ever in flight at once on one session (2+ means two keepalives overlapped). */
  peakInFlight(sessionId: string): number;
  /** TCP connections accepted so far (keep-alive clients reuse theirs). */
  connectionCount(): number;
  /** With `bindAuthorization`: every later request carrying this `Authorization` value answers 401. */
  revoke(authorization: string): void;
  /** Stops the HTTP server and drops every session. */
  stop(): Promise<void>;
}

interface Entry {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  lastActivity: number;
  /** With `bindAuthorization`: the `Authorization` the session was initialized with. */
  authorization: string | undefined;
}

function buildServer(name: string): McpServer {
  const server = new McpServer({ name, version: "1.0.0" });
  server.registerTool("echo", { description: "Echoes its text.", inputSchema: { text: z.string().default("") } }, ({ text }) => ({
    content: [{ type: "text", text }],
  }));
  server.registerTool("noop", { description: "Cheap keepalive tool: does nothing." }, () => ({
    content: [{ type: "text", text: "ok" }],
  }));
  server.registerTool("fail", { description: "Always answers isError." }, () => ({
    content: [{ type: "text", text: "failed on purpose" }],
    isError: true,
  }));
  return server;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A real stateful MCP server built with the SDK (Streamable HTTP), with an idle session TTL and
 * switchable failure modes. Used by tests, the benchmark and the demo.
 */
export async function startMcpTestBackend(options: McpTestBackendOptions = {}): Promise<McpTestBackend> {
  const sessions = new Map<string, Entry>();
  const calls: RecordedCall[] = [];
  const sockets = new Set<Socket>();
  const inFlight = new Map<string, number>();
  const peak = new Map<string, number>();
  let pingSupported = options.pingSupported ?? true;
  const revoked = new Set<string>();
  const name = options.name ?? "vmk-test-backend";

  const applyPing = (entry: Entry) => {
    if (pingSupported) entry.server.server.setRequestHandler(PingRequestSchema, () => ({}));
    else entry.server.server.removeRequestHandler("ping");
  };

  const state = {
    mode: "ok" as BackendMode,
    delayMs: options.delayMs ?? 0,
    pingFailsHttp500: options.pingFailsHttp500 ?? false,
  };

  const sweep = options.idleTtlMs
    ? setInterval(
        () => {
          const cutoff = Date.now() - (options.idleTtlMs ?? 0);
          for (const [id, entry] of sessions) {
            if (entry.lastActivity < cutoff) {
              sessions.delete(id);
              void entry.transport.close().catch(() => {});
            }
          }
        },
        Math.max(25, Math.min(250, Math.floor(options.idleTtlMs / 10))),
      )
    : undefined;
  sweep?.unref();

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    if (res.headersSent) return;
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (state.mode === "reset") {
      req.socket.destroy();
      return;
    }
    const raw = req.method === "POST" ? await readBody(req) : "";
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = undefined;
    }
    const msg = (body && typeof body === "object" && !Array.isArray(body) ? body : {}) as {
      method?: string;
      id?: string | number;
      params?: { name?: string };
    };
    const sessionId = req.headers["mcp-session-id"] as string | undefined;
    const record = (status: number | undefined) =>
      calls.push({
        at: Date.now(),
        sessionId,
        method: msg.method ?? req.method ?? "?",
        id: msg.id,
        tool: msg.method === "tools/call" ? msg.params?.name : undefined,
        protocolVersion: req.headers["mcp-protocol-version"] as string | undefined,
        status,
      });

    if (sessionId !== undefined && req.method === "POST") {
      // From arrival (before any artificial delay) to the end of the answer.
      const n = (inFlight.get(sessionId) ?? 0) + 1;
      inFlight.set(sessionId, n);
      peak.set(sessionId, Math.max(peak.get(sessionId) ?? 0, n));
      res.once("close", () => inFlight.set(sessionId, (inFlight.get(sessionId) ?? 1) - 1));
    }
    if (state.mode === "hang") {
      record(undefined);
      return; // never answered; the client times out
    }
    if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
    if (state.mode === "http_503") {
      record(503);
      return answer(res, 503, { error: "backend unavailable" });
    }
    if (options.requireHeader && req.headers[options.requireHeader.name.toLowerCase()] !== options.requireHeader.value) {
      record(401);
      return answer(res, 401, { jsonrpc: "2.0", error: { code: -32001, message: "Unauthorized" }, id: null });
    }

    const authorization = req.headers["authorization"];
    const unauthorized = () => {
      record(401);
      answer(res, 401, { jsonrpc: "2.0", error: { code: -32001, message: "Unauthorized" }, id: null });
    };
    if (options.bindAuthorization && (!authorization || revoked.has(authorization))) return unauthorized();

    if (sessionId !== undefined) {
      const entry = sessions.get(sessionId);
      if (!entry) {
        record(404);
        return answer(res, 404, { jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: msg.id ?? null });
      }
      // A session belongs to its user: the id alone is not authentication.
      if (options.bindAuthorization && entry.authorization !== authorization) return unauthorized();
      if (msg.method === "ping" && state.pingFailsHttp500) {
        record(500);
        return answer(res, 500, { error: "ping handler crashed" });
      }
      record(undefined);
      if ((options.idleResetBy ?? "any") === "any" || msg.method === "tools/call") entry.lastActivity = Date.now();
      await entry.transport.handleRequest(req, res, body);
      return;
    }

    if (req.method === "POST" && msg.method === "initialize") {
      record(undefined);
      const server = buildServer(name);
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: options.jsonResponse ?? false,
        onsessioninitialized: (id) => {
          const entry = { transport, server, lastActivity: Date.now(), authorization };
          sessions.set(id, entry);
          applyPing(entry);
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
      return;
    }
    record(400);
    answer(res, 400, { jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: no session id" }, id: null });
  };

  const http: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => answer(res, 500, { error: String(err) }));
  });
  let connections = 0;
  http.on("connection", (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const port = (http.address() as AddressInfo).port;

  let stopped: Promise<void> | undefined;
  const backend: McpTestBackend = {
    url: `http://127.0.0.1:${port}/mcp`,
    connectionCount: () => connections,
    port,
    calls,
    get mode() {
      return state.mode;
    },
    set mode(m: BackendMode) {
      state.mode = m;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    get pingFailsHttp500() {
      return state.pingFailsHttp500;
    },
    set pingFailsHttp500(v: boolean) {
      state.pingFailsHttp500 = v;
    },
    setPingSupported(supported) {
      pingSupported = supported;
      for (const entry of sessions.values()) applyPing(entry);
    },
    hasSession: (id) => sessions.has(id),
    sessionCount: () => sessions.size,
    peakInFlight: (id) => peak.get(id) ?? 0,
    revoke: (value) => void revoked.add(value),
    count: (method, sid) => calls.filter((c) => c.method === method && (sid === undefined || c.sessionId === sid)).length,
    stop() {
      stopped ??= (async () => {
        if (sweep) clearInterval(sweep);
        for (const entry of sessions.values()) await entry.transport.close().catch(() => {});
        sessions.clear();
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => http.close(() => resolve()));
      })();
      return stopped;
    },
  };
  return backend;
}
