import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The built programs, as `pnpm exec` would run them. */
export const BINS = {
  scheduler: join(ROOT, "packages/scheduler/bin/vmcp-keepalive-scheduler.js"),
  worker: join(ROOT, "packages/worker/bin/vmcp-keepalive-worker.js"),
  cli: join(ROOT, "packages/scheduler/bin/vmcp-keepalive.js"),
  dev: join(ROOT, "packages/demo/bin/vmcp-keepalive-dev.js"),
  demoBackend: join(ROOT, "packages/demo/bin/vmcp-keepalive-demo-backend.js"),
} as const;

/** Writes a YAML config (snake_case keys, as an operator writes it) to a temp file. */
export function writeConfig(document: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), "vmk-e2e-"));
  const path = join(dir, "config.yaml");
  // Ephemeral ops HTTP ports unless the test sets them: several programs run side by side here,
  // and the default ports (9464/9465) would collide. Read the bound port with `httpUrlOf`.
  const withHttp = "http" in document ? document : { ...document, http: { port: 0 } };
  writeFileSync(path, stringify(withHttp));
  return path;
}

export interface RunningProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything it printed so far (stdout + stderr). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logs(): Record<string, unknown>[];
  /** SIGTERM, then wait for exit; returns the exit code (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL (a crash). */
  kill(): Promise<void>;
  exited(): Promise<number | null>;
}

/** Starts one of the programs as a real child process. */
export function startProgram(name: keyof typeof BINS, args: string[], env: NodeJS.ProcessEnv = {}): RunningProcess {
  const child = spawn(process.execPath, [BINS[name], ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    name,
    child,
    output: () => out,
    logs: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        }),
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const force = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.kill("SIGTERM");
      const code = await exit;
      clearTimeout(force);
      return code;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exit;
    },
    exited: () => exit,
  };
}

/** Runs the admin CLI to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BINS.cli, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("exit", (code) => done({ code, stdout, stderr }));
  });
}

/** Waits until a process has written output (any line, JSON or not) that matches. */
export async function waitForOutput(p: RunningProcess, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(p.output())) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) before writing ${String(pattern)}:\n${p.output()}`);
    if (Date.now() > deadline) throw new Error(`${p.name} did not write ${String(pattern)} within ${timeoutMs} ms:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until a process has logged a line whose msg matches. */
export async function waitForLog(p: RunningProcess, msg: string | RegExp, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = p.logs().find((l) => (typeof msg === "string" ? l["msg"] === msg : msg.test(String(l["msg"] ?? ""))));
    if (hit) return hit;
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) before logging ${String(msg)}:\n${p.output()}`);
    if (Date.now() > deadline) throw new Error(`${p.name} did not log ${String(msg)} within ${timeoutMs} ms:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The base URL of a program's ops HTTP server, from its "http server listening" log line. */
export async function httpUrlOf(p: RunningProcess, timeoutMs = 20_000): Promise<string> {
  const line = await waitForLog(p, "http server listening", timeoutMs);
  return String(line["url"]);
}

/** Starts one scheduler and one worker on a config and waits until both have logged `… started`. */
export async function startSchedulerAndWorker(config: string, timeoutMs = 30_000): Promise<{ scheduler: RunningProcess; worker: RunningProcess }> {
  const scheduler = startProgram("scheduler", ["--config", config]);
  const worker = startProgram("worker", ["--config", config]);
  try {
    await waitForLog(scheduler, "scheduler started", timeoutMs);
    await waitForLog(worker, "worker started", timeoutMs);
  } catch (err) {
    await Promise.all([scheduler.stop(), worker.stop()]);
    throw err;
  }
  return { scheduler, worker };
}

/**
 * Stops every program (SIGTERM, at most `timeoutMs` each, all at once) and returns their exit
 * codes, printing the output tail of any that did not exit 0 — so a check on one code can never
 * leave another program running.
 */
export async function stopAll(programs: readonly RunningProcess[], timeoutMs = 20_000): Promise<(number | null)[]> {
  const codes = await Promise.all(programs.map((p) => p.stop(timeoutMs)));
  programs.forEach((p, i) => {
    if (codes[i] !== 0) console.log(`${p.name} exited ${codes[i]}; its last output:\n${p.output().slice(-4_000)}`);
  });
  return codes;
}
