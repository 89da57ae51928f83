import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/** A TCP proxy on loopback that delays what the target sends back. */
export interface LatencyProxy {
  /** `redis://127.0.0.1:<port>` when the target is a Redis. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Forwards every connection to `target`, holding each chunk of the target's replies for
 * `delayMs` before passing it on (order kept: equal delays fire in order). Stands for a Redis
 * that is far away or overloaded, without touching the Redis itself. Runs in the calling process:
 * under heavy traffic use {@link startLatencyProxyProcess}, whose event loop is its own.
 */
export async function startLatencyProxy(target: { host?: string; port: number }, delayMs: number): Promise<LatencyProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host ?? "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
      }, delayMs);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => setTimeout(() => client.destroy(), delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * {@link startLatencyProxy} in a child process of its own: thousands of delayed chunks a second
 * would otherwise load the test process's event loop and stretch every delay far past `delayMs`.
 */
export async function startLatencyProxyProcess(target: { host?: string; port: number }, delayMs: number): Promise<LatencyProxy> {
  const main = fileURLToPath(new URL("./latency-proxy-main.js", import.meta.url));
  const child = spawn(process.execPath, [main, String(target.port), String(delayMs), target.host ?? "127.0.0.1"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`latency proxy exited with ${code}`)));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
