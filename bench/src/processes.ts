import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));

/** The real programs, resolved through the workspace dependencies. */
export const PROGRAMS = {
  worker: join(dirname(require.resolve("@vmcp-keepalive/worker/package.json")), "bin/vmcp-keepalive-worker.js"),
  scheduler: join(dirname(require.resolve("@vmcp-keepalive/scheduler/package.json")), "bin/vmcp-keepalive-scheduler.js"),
  plainLoop: join(HERE, "clients/plain-loop.js"),
  inProcess: join(HERE, "clients/in-process-timers.js"),
  plainBullmq: join(HERE, "clients/plain-bullmq-worker.js"),
} as const;

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  output(): string;
  /** SIGTERM and wait (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
  /** SIGKILL (a crash) and wait. */
  kill(): Promise<void>;
}

/** Writes a config file (snake_case YAML, as an operator writes it) into `dir`. */
export function writeConfig(dir: string, name: string, document: Record<string, unknown>): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify(document));
  return path;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "vmk-bench-"));
}

const running = new Set<Child>();

/** Extra node flags for the worker processes (`--profile-throughput` sets `--cpu-prof`). */
export const workerNodeFlags: string[] = [];

/** Extra node flags for the scheduler processes, from `BENCH_SCHEDULER_NODE_FLAGS` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
export const schedulerNodeFlags: readonly string[] = process.env["BENCH_SCHEDULER_NODE_FLAGS"]?.split(" ").filter(Boolean) ?? [];

/** Starts a node program as a child process; output is kept (last 8 KB) for error messages. */
export function startChild(name: string, script: string, args: readonly string[], nodeFlags: readonly string[] = []): Child {
  const child = spawn(process.execPath, [...nodeFlags, script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-8_000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const handle: Child = {
    name,
    pid: child.pid ?? -1,
    child,
    output: () => out,
    async stop(timeoutMs = 15_000) {
      if (alive()) {
        const force = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.kill("SIGTERM");
        await exited;
        clearTimeout(force);
      }
      running.delete(handle);
    },
    async kill() {
      if (alive()) {
        child.kill("SIGKILL");
        await exited;
      }
      running.delete(handle);
    },
  };
  running.add(handle);
  return handle;
}

/** Waits until a child has printed `text` (or fails with its output when it exits first). */
export async function waitForOutput(c: Child, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!c.output().includes(text)) {
    if (c.child.exitCode !== null) throw new Error(`${c.name} exited with ${c.child.exitCode}:\n${c.output()}`);
    if (Date.now() > deadline) throw new Error(`${c.name} did not print ${JSON.stringify(text)} within ${timeoutMs} ms:\n${c.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Kills every child still running (used on errors, so a failed run leaves nothing behind). */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((c) => c.kill()));
}
