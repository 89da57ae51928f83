import { spawn, type ChildProcess } from "node:child_process";
import { connect, createServer } from "node:net";
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { tlsServerDirectives, type TestTls } from "./test-pki.js";

/*
 * What every Redis harness of the kit shares: free ports, the redis-server child process and its
 * readiness, raw RESP commands over a short-lived socket, and redis-cli runs.
 */

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

/** A source of free loopback ports that never hands out the same one twice (a harness starting several servers). */
export function distinctPorts(): () => Promise<number> {
  const taken = new Set<number>();
  return async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
}

/** A reply as RESP2 delivers it; errors nested in arrays stay Error values. */
/**
 * The arguments every local redis-server of the test kit starts with: loopback only, its own data
 * directory, no RDB snapshots, AOF as asked, quiet, in the foreground; with `tls`, TLS only on
 * `port`. Each harness adds its own.
 */
export function localServerArgs(port: number, dir: string, options: { appendOnly?: boolean | undefined; tls?: TestTls | undefined } = {}): string[] {
  return [
    // TLS: no plain port, TLS on `port`.
    ...(options.tls ? tlsServerDirectives(options.tls, port).flatMap(([name, value]) => [`--${name}`, value]) : ["--port", String(port)]),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    options.appendOnly ? "yes" : "no",
    "--protected-mode",
    "yes",
    "--loglevel",
    "warning",
    "--daemonize",
    "no",
  ];
}

export type RespValue = string | number | null | Error | RespValue[];

/**
 * How the kit's raw commands reach a loopback server: its port, and for a TLS-only server the
 * client's TLS options (CA, client certificate), and the password when it has one.
 */
export interface RedisEndpoint {
  readonly port: number;
  readonly tls?: TlsConnectionOptions | undefined;
  readonly password?: string | undefined;
}

/** Sends one command over a fresh loopback connection and resolves with its reply (rejects on an error reply). */
export async function redisCommand(to: number | RedisEndpoint, args: readonly string[], timeoutMs = 2_000): Promise<RespValue> {
  const [reply = null] = await redisPipeline(to, [args], timeoutMs);
  if (reply instanceof Error) throw reply;
  return reply;
}

/**
 * Sends commands back to back over one fresh loopback connection; resolves with every reply (error
 * replies as Error values). An endpoint with a password gets AUTH first (its reply is not among
 * those returned; a failed AUTH rejects).
 */
export async function redisPipeline(to: number | RedisEndpoint, commands: ReadonlyArray<readonly string[]>, timeoutMs = 2_000): Promise<RespValue[]> {
  const endpoint = typeof to === "number" ? { port: to } : to;
  if (endpoint.password === undefined) return rawPipeline(endpoint.port, endpoint.tls, commands, timeoutMs);
  const [auth, ...replies] = await rawPipeline(endpoint.port, endpoint.tls, [["AUTH", endpoint.password], ...commands], timeoutMs);
  if (auth instanceof Error) throw auth;
  return replies;
}

function rawPipeline(port: number, tls: TlsConnectionOptions | undefined, commands: ReadonlyArray<readonly string[]>, timeoutMs: number): Promise<RespValue[]> {
  const what = commands.map((c) => c[0] ?? "").join("+");
  return new Promise((resolve, reject) => {
    const socket = tls ? tlsConnect({ ...tls, port, host: "127.0.0.1" }) : connect(port, "127.0.0.1");
    let buffer = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no reply from 127.0.0.1:${port} to ${what} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | undefined, replies: RespValue[] = []) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    socket.setNoDelay(true);
    socket.once(tls ? "secureConnect" : "connect", () => socket.write(commands.map((args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`).join("")));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const replies: RespValue[] = [];
      let end = 0;
      try {
        while (replies.length < commands.length) {
          const parsed = parseResp(buffer, end);
          if (!parsed) return;
          replies.push(parsed.value);
          end = parsed.end;
        }
      } catch (err) {
        return finish(err as Error);
      }
      finish(undefined, replies);
    });
    socket.once("error", (err) => finish(err));
    socket.once("close", () => finish(new Error(`connection to 127.0.0.1:${port} closed before a reply to ${what}`)));
  });
}

function parseResp(buffer: Buffer, start: number): { value: RespValue; end: number } | undefined {
  const eol = buffer.indexOf("\r\n", start);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buffer[start]!);
  const line = buffer.toString("utf8", start + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+":
      return { value: line, end: next };
    case "-":
      return { value: new Error(line), end: next };
    case ":":
      return { value: Number(line), end: next };
    case "$": {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buffer.length < next + length + 2) return undefined;
      return { value: buffer.toString("utf8", next, next + length), end: next + length + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseResp(buffer, end);
        if (!item) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

/** Renders a reply as text: bulk strings as they are, arrays one element a line (nested arrays flattened). */
export function formatReply(value: RespValue): string {
  if (value === null) return "";
  if (value instanceof Error) return `(error) ${value.message}`;
  if (Array.isArray(value)) return value.map(formatReply).join("\n");
  return String(value);
}

/** A redis-server child process: its output's tail kept for errors, ready once it answers PING. */
export interface RedisProcess {
  readonly port: number;
  readonly pid: number;
  /** Resolves once it answers PING; rejects if it exits first or takes more than 10 s. */
  readonly ready: Promise<void>;
  alive(): boolean;
  /** The tail of what it printed. */
  output(): string;
  /** SIGKILL; resolves once it has exited. */
  kill(): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts a redis-server. `tls`: it listens with TLS only on `port` (tls-port), and its readiness
 * is probed over TLS with these client options (CA, client certificate).
 */
export function spawnRedisProcess(args: readonly string[], port: number, cwd: string, binary = "redis-server", tls?: TlsConnectionOptions): RedisProcess {
  const child: ChildProcess = spawn(binary, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  child.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  let spawnFailed = false;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.on("error", () => {
      if (child.pid === undefined) {
        spawnFailed = true;
        resolve();
      }
    });
  });
  // Don't leave servers behind if the test process exits without stop().
  liveChildren.add(child);
  void exited.then(() => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of liveChildren) c.kill("SIGKILL");
    });
  }
  const alive = () => !spawnFailed && child.pid !== undefined && child.exitCode === null && child.signalCode === null;

  const ready = new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      clearInterval(poll);
      reject(err.code === "ENOENT" ? new Error(REDIS_INSTALL_HINT) : err);
    };
    const onExit = (code: number | null) => {
      clearInterval(poll);
      reject(new Error(`redis-server on port ${port} exited with code ${code} before it was ready: ${output.trim()}`));
    };
    child.once("error", onError);
    child.once("exit", onExit);
    const started = Date.now();
    const poll = setInterval(() => {
      const socket = tls ? tlsConnect({ ...tls, port, host: "127.0.0.1" }) : connect(port, "127.0.0.1");
      socket.once(tls ? "secureConnect" : "connect", () => socket.write("PING\r\n"));
      socket.once("data", (d) => {
        socket.destroy();
        // A server with a password answers NOAUTH: it is up all the same.
        if (!/^(\+PONG|-NOAUTH)/.test(d.toString())) return;
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
    port,
    pid: child.pid ?? -1,
    ready,
    alive,
    output: () => output,
    kill() {
      if (alive()) child.kill("SIGKILL");
      return exited;
    },
    stop() {
      stopped ??= (async () => {
        if (!alive()) return exited;
        const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.kill("SIGTERM");
        await exited;
        clearTimeout(kill);
      })();
      return stopped;
    },
  };
}

/** Runs redis-cli to completion; rejects with its output if it fails or runs longer than `timeoutMs`. */
export function runRedisCli(args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-8_000)));
    child.stderr.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-8_000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err.code === "ENOENT" ? new Error(REDIS_INSTALL_HINT.replace("redis-server", "redis-cli")) : err);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`redis-cli ${args.slice(0, 2).join(" ")} failed (${signal ?? `code ${code}`}): ${output.trim()}`));
    });
  });
}
