import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface EmbeddedRedis {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** Stops redis-server and deletes its data directory (unless `keepDir`). Idempotent. */
  stop(): Promise<void>;
}

export interface EmbeddedRedisOptions {
  /** Port to listen on; default: a free loopback port. */
  port?: number;
  /** Data directory; default: a fresh temp dir, removed on stop. */
  dir?: string;
  /** Append-only file on (for restart-with-data tests). @defaultValue false */
  appendOnly?: boolean;
  /** Path or name of the server binary. @defaultValue "redis-server" */
  binary?: string;
  /** Keep the data directory on stop. @defaultValue false */
  keepDir?: boolean;
}

export const REDIS_INSTALL_HINT =
  "redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`; " +
  "macOS: `brew install redis`) or point the system at an existing Redis with REDIS_URL / redis.url.";

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a private `redis-server` on loopback with its own data directory. Used by the dev
 * command when no Redis is configured, and by the test harness.
 */
export async function startEmbeddedRedis(options: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const port = options.port ?? (await freePort());
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "vmk-redis-"));
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    options.appendOnly ? "yes" : "no",
    "--appendfsync",
    "everysec",
    "--daemonize",
    "no",
    "--protected-mode",
    "yes",
    "--loglevel",
    "warning",
  ];
  const child: ChildProcess = spawn(options.binary ?? "redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      clearInterval(poll);
      reject(err.code === "ENOENT" ? new Error(REDIS_INSTALL_HINT) : err);
    };
    const onExit = (code: number | null) => {
      clearInterval(poll);
      reject(new Error(`redis-server exited with code ${code} before it was ready: ${output.trim()}`));
    };
    child.once("error", onError);
    child.once("exit", onExit);
    const started = Date.now();
    const poll = setInterval(() => {
      // Ready once it answers PING; redis-server prints nothing at --loglevel warning.
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => socket.write("PING\r\n"));
      socket.once("data", (d) => {
        socket.destroy();
        if (!d.toString().startsWith("+PONG")) return;
        clearInterval(poll);
        child.off("error", onError);
        child.off("exit", onExit);
        resolve();
      });
      socket.once("error", () => socket.destroy());
      if (Date.now() - started > 10_000) {
        clearInterval(poll);
        child.kill("SIGKILL");
        reject(new Error(`redis-server did not become ready on port ${port} within 10 s: ${output.trim()}`));
      }
    }, 50);
  });

  let stopped: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: child.pid ?? -1,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        const done = () => {
          if (ownDir && !options.keepDir) rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.once("exit", () => {
          clearTimeout(kill);
          done();
        });
        child.kill("SIGTERM");
      });
      return stopped;
    },
  };
}
