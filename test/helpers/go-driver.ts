import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Keys, RedisConnection } from "@vmcp-keepalive/shared";
import { waitFor, type McpTestBackend } from "@vmcp-keepalive/testkit";

/**
 * The Go stand-in vMCP (clients/go/internal/e2edriver), built offline with Go 1.19
 * (clients/go/go-offline.sh) and run as a child process that speaks JSON lines.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const GO_OFFLINE = join(ROOT, "clients/go/go-offline.sh");

/** Runs the go command through go-offline.sh (with `env` added); stdout and stderr together. */
export function goOffline(args: string[], timeoutMs: number, env: Record<string, string> = {}): { status: number | null; output: string } {
  const r = spawnSync("bash", [GO_OFFLINE, ...args], { encoding: "utf8", timeout: timeoutMs, env: { ...process.env, VMK_NODE: process.execPath, ...env } });
  return { status: r.status, output: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ""}` };
}

/** Builds the driver into a temp dir; `remove` deletes it. Throws with the compiler's output. */
export function buildGoDriver(): { binary: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "vmk-go-e2e-"));
  const binary = join(dir, "e2edriver");
  const build = goOffline(["build", "-o", binary, "./internal/e2edriver"], 180_000);
  if (build.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`go build ./internal/e2edriver failed (${build.status}):\n${build.output}`);
  }
  return { binary, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface DriverLine {
  event: string;
  [key: string]: unknown;
}

export interface GoDriver {
  /** Every line so far, in order. */
  readonly lines: DriverLine[];
  stderr(): string;
  send(command: string): void;
  /** The first line of this event at or after index `from` (default: the first ever). */
  line(event: string, timeoutMs?: number, from?: number): Promise<DriverLine>;
  /** Sends a command and waits for the first line of `event` written after it. */
  request(command: string, event: string, timeoutMs?: number): Promise<DriverLine>;
  /** "quit", then the exit code (SIGKILL after 10 s). Idempotent. */
  stop(): Promise<number | null>;
}

/** Starts the driver with `env` (see the driver's package comment for the variables). */
export function startGoDriver(binary: string, env: Record<string, string>): GoDriver {
  const child: ChildProcess = spawn(binary, [], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  const lines: DriverLine[] = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on("line", (l) => lines.push(JSON.parse(l) as DriverLine));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const line = async (event: string, timeoutMs = 20_000, from = 0): Promise<DriverLine> => {
    const find = () => lines.slice(from).find((l) => l.event === event);
    return waitFor(
      `driver line ${event}`,
      () => {
        const hit = find();
        if (!hit && child.exitCode !== null) throw new Error(`the driver exited (${child.exitCode}): ${stderr.slice(-2_000)}`);
        return hit;
      },
      timeoutMs,
      20,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)} (stderr: ${stderr.slice(-1_000)})`);
    });
  };
  let stopping: Promise<number | null> | undefined;
  return {
    lines,
    stderr: () => stderr,
    send: (command) => void child.stdin!.write(`${command}\n`),
    line,
    request(command, event, timeoutMs) {
      const from = lines.length;
      child.stdin!.write(`${command}\n`);
      return line(event, timeoutMs, from);
    },
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
        child.stdin!.end("quit\n");
        const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
        const code = await exited;
        clearTimeout(force);
        return code;
      })();
      return stopping;
    },
  };
}

/**
 * The successful pings a test backend answered, by backend session, read from its call log as it
 * grows (one pass over new calls per query, not a scan of the whole log per session).
 */
export function pingLog(backend: McpTestBackend) {
  const times = new Map<string, number[]>();
  let seen = 0;
  const update = () => {
    const calls = backend.calls;
    for (; seen < calls.length; seen++) {
      const c = calls[seen]!;
      if (c.method !== "ping" || c.sessionId === undefined || c.status !== undefined) continue;
      let list = times.get(c.sessionId);
      if (!list) times.set(c.sessionId, (list = []));
      list.push(c.at);
    }
  };
  return {
    /** Pinged after `since` (ms since the epoch). */
    pingedSince(backendSessionId: string, since: number): boolean {
      update();
      const list = times.get(backendSessionId);
      return list !== undefined && list[list.length - 1]! > since;
    },
    /** The first ping after `since`, or undefined. */
    firstSince(backendSessionId: string, since: number): number | undefined {
      update();
      return times.get(backendSessionId)?.find((t) => t > since);
    },
  };
}

/** Which of these sessions' pair hashes exist (one pipeline per shard: a Cluster pipeline stays on one node). */
export async function pairsPresent(redis: RedisConnection, keys: Keys, sessionIds: readonly string[], backendId: string): Promise<boolean[]> {
  const byShard = new Map<number, number[]>();
  sessionIds.forEach((id, i) => {
    const shard = keys.shardOf(id);
    byShard.set(shard, [...(byShard.get(shard) ?? []), i]);
  });
  const out = new Array<boolean>(sessionIds.length).fill(false);
  await Promise.all(
    [...byShard.values()].map(async (indexes) => {
      const pipe = redis.pipeline();
      for (const i of indexes) pipe.exists(keys.pair(sessionIds[i]!, backendId));
      const replies = (await pipe.exec()) ?? [];
      replies.forEach(([err, v], j) => {
        if (err) throw err;
        out[indexes[j]!] = v === 1;
      });
    }),
  );
  return out;
}
