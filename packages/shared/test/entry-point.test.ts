import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/*
 * What a vMCP pulls in with `import … from "@vmcp-keepalive/shared"`: a child process imports
 * the package root under a module-load hook (node:module `register`) that reports every module
 * URL it resolves; none may belong to the programs' dependencies.
 */
const FORBIDDEN = ["@modelcontextprotocol/sdk", "prom-client", "pino", "yaml"];

const CHILD = `
import { register } from "node:module";
import { MessageChannel } from "node:worker_threads";
const { port1, port2 } = new MessageChannel();
const seen = [];
port1.on("message", (url) => seen.push(url));
port1.unref();
const hook = "data:text/javascript," + encodeURIComponent(
  "let port; export function initialize(data) { port = data.port; }" +
  "export async function resolve(specifier, context, next) { const r = await next(specifier, context); port.postMessage(r.url); return r; }"
);
register(hook, { data: { port: port2 }, transferList: [port2] });
const shared = await import("@vmcp-keepalive/shared");
await new Promise((r) => setTimeout(r, 100));
process.stdout.write(JSON.stringify({ exports: Object.keys(shared), createVmcpClient: typeof shared.createVmcpClient, modules: seen }));
`;

describe("the package root, as a vMCP imports it", () => {
  const packageDir = fileURLToPath(new URL("..", import.meta.url));
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], { cwd: packageDir, encoding: "utf8" });
  const report = JSON.parse(run.stdout || "{}") as { exports?: string[]; createVmcpClient?: string; modules?: string[] };

  it("exports createVmcpClient", () => {
    expect(run.stderr).toBe("");
    expect(report.createVmcpClient).toBe("function");
  });

  it("loads its own modules and its four dependencies, none of the programs' (MCP SDK, prom-client, pino, yaml)", () => {
    const modules = report.modules ?? [];
    expect(modules.some((u) => u.includes("/shared/dist/index.js"))).toBe(true);
    expect(modules.some((u) => u.includes("/bullmq/"))).toBe(true);
    for (const name of FORBIDDEN) expect(modules.filter((u) => u.includes(`/node_modules/${name}/`) || u.includes(`/${name.replace("/", "+")}@`))).toEqual([]);
  });
});
