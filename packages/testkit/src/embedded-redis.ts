import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, localServerArgs, spawnRedisProcess } from "./redis-process.js";

export { freePort, REDIS_INSTALL_HINT } from "./redis-process.js";

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
  /**
   * Users from this ACL file (`--aclfile`). The harness checks readiness with an unauthenticated
   * PING, so the file must leave the default user able to PING.
   */
  aclFile?: string;
}

/**
 * Starts a private `redis-server` on loopback with its own data directory. Used by the dev
 * command when no Redis is configured, and by the test harness.
 */
export async function startEmbeddedRedis(options: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const port = options.port ?? (await freePort());
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "vmk-redis-"));
  const args = [...localServerArgs(port, dir, { appendOnly: options.appendOnly }), "--appendfsync", "everysec", ...(options.aclFile ? ["--aclfile", options.aclFile] : [])];
  const server = spawnRedisProcess(args, port, dir, options.binary);
  const removeDir = () => {
    if (ownDir && !options.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await server.ready;
  } catch (err) {
    removeDir();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: server.pid,
    stop() {
      stopped ??= server.stop().then(removeDir);
      return stopped;
    },
  };
}
