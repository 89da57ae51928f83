import { parseArgs } from "node:util";
import { parseDuration } from "@vmcp-keepalive/runtime";
import { startDemoMcpServer } from "./demo-mcp-server.js";

/**
 * The demo's stateful MCP backend as a program (docker-compose runs it): a real SDK server that
 * drops sessions idle longer than --idle-ttl, like a Playwright or database MCP server.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: "string", default: "8931" }, "idle-ttl": { type: "string", default: "60s" }, host: { type: "string" } },
    strict: true,
  });
  const port = Number(values.port);
  const idleTtlMs = parseDuration(values["idle-ttl"]);
  if (!Number.isInteger(port) || port <= 0 || port > 65_535) throw new Error(`--port ${values.port} is not a TCP port`);
  if (idleTtlMs === undefined || idleTtlMs < 1_000) throw new Error(`--idle-ttl ${values["idle-ttl"]} is not a duration of at least 1s`);
  const backend = await startDemoMcpServer({ port, idleTtlMs, ...(values.host ? { host: values.host } : {}) });
  process.stdout.write(`demo backend listening on ${backend.url} (sessions idle for ${values["idle-ttl"]} expire)\n`);
  const stop = () => void backend.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`vmcp-keepalive-demo-backend: ${(err as Error).message}\n`);
  process.exit(2);
});
