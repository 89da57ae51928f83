import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

/** The demo's stateful backend, as the demo command and the demo-backend program run it. */
export interface DemoMcpServer {
  readonly url: string;
  /** `ping` requests received so far (what the demo reports as keepalives). */
  pings(): number;
  stop(): Promise<void>;
}

/**
 * A stateful MCP server built with the SDK (Streamable HTTP) whose sessions expire after
 * `idleTtlMs` without a request — the behaviour of a Playwright or database MCP server that
 * keepalive exists for. One tool, `echo`, so a vMCP can show that a session is still usable.
 */
export async function startDemoMcpServer(options: { port: number; host?: string; idleTtlMs: number }): Promise<DemoMcpServer> {
  const live = new Map<string, { transport: StreamableHTTPServerTransport; seenAt: number }>();
  let pings = 0;

  const newSession = async (): Promise<StreamableHTTPServerTransport> => {
    const mcp = new McpServer({ name: "vmk-demo-backend", version: "1.0.0" });
    mcp.registerTool("echo", { description: "Answers with its text.", inputSchema: { text: z.string() } }, ({ text }) => ({
      content: [{ type: "text", text }],
    }));
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => void live.set(id, { transport, seenAt: Date.now() }),
    });
    await mcp.connect(transport);
    return transport;
  };

  const jsonBody = async (req: IncomingMessage): Promise<{ method?: string } | undefined> => {
    let text = "";
    for await (const part of req) text += String(part);
    try {
      return text ? (JSON.parse(text) as { method?: string }) : undefined;
    } catch {
      return undefined;
    }
  };

  const http = createServer((req, res) => {
    void (async () => {
      const body = req.method === "POST" ? await jsonBody(req) : undefined;
      const id = req.headers["mcp-session-id"];
      if (typeof id === "string") {
        const session = live.get(id);
        if (!session) {
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }));
          return;
        }
        if (body?.method === "ping") pings++;
        session.seenAt = Date.now();
        await session.transport.handleRequest(req, res, body);
        return;
      }
      await (await newSession()).handleRequest(req, res, body);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  const sweep = setInterval(() => {
    for (const [id, s] of live) {
      if (Date.now() - s.seenAt <= options.idleTtlMs) continue;
      live.delete(id);
      void s.transport.close().catch(() => {});
    }
  }, 250);
  sweep.unref();

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port, options.host ?? "127.0.0.1", resolve);
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    pings: () => pings,
    async stop() {
      clearInterval(sweep);
      for (const s of live.values()) await s.transport.close().catch(() => {});
      live.clear();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
