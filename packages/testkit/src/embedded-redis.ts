import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, localServerArgs, spawnRedisProcess } from "./redis-process.js";
import { tlsClientOptions, type TestTls, type TestTlsClient } from "./test-pki.js";

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
  /** More redis-server arguments (the dev command passes the settings vmcp-keepalive ships). */
  args?: readonly string[];
}

/**
 * Starts a private `redis-server` on loopback with its own data directory. Used by the dev
 * command when no Redis is configured, and by the test harness.
 */
export async function startEmbeddedRedis(options: EmbeddedRedisOptions = {}): Promise<EmbeddedRedis> {
  const port = options.port ?? (await freePort());
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "vmk-redis-"));
  const args = [...localServerArgs(port, dir, { appendOnly: options.appendOnly }), "--appendfsync", "everysec", ...(options.aclFile ? ["--aclfile", options.aclFile] : []), ...(options.args ?? [])];
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

/** `pki`: the private CA and certificates (makeTestPki); `requireClientCert` (default true). */
export interface TlsRedisOptions extends TestTls {
  /** `requirepass`. */
  readonly password?: string;
  /** More redis-server arguments. */
  readonly args?: readonly string[];
}

export interface TlsRedis extends EmbeddedRedis {
  /** TLS options a client of this server needs (CA, client certificate), for ioredis `tls`. */
  readonly tls: TestTlsClient;
}

/**
 * Starts a private redis-server that speaks TLS only (`--port 0`, `--tls-port`): its certificate
 * is the test CA's server certificate (for 127.0.0.1, localhost and redis.test). Its `url` is
 * `rediss://127.0.0.1:<port>` (with the password when set).
 */
export async function startTlsRedis(options: TlsRedisOptions): Promise<TlsRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "vmk-redis-tls-"));
  const args = [...localServerArgs(port, dir, { tls: options }), ...(options.password ? ["--requirepass", options.password] : []), ...(options.args ?? [])];
  const tls = tlsClientOptions(options.pki);
  const server = spawnRedisProcess(args, port, dir, "redis-server", tls);
  try {
    await server.ready;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    url: `rediss://${options.password ? `:${encodeURIComponent(options.password)}@` : ""}127.0.0.1:${port}`,
    port,
    dir,
    pid: server.pid,
    tls,
    stop() {
      stopped ??= server.stop().then(() => rmSync(dir, { recursive: true, force: true }));
      return stopped;
    },
  };
}
