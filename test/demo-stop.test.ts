import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { sleep } from "@vmcp-keepalive/testkit";
import { BINS } from "./helpers/processes.js";

/**
 * The demo (`npm run demo`) as a user stops it: Ctrl-C and `timeout` signal its whole process
 * group, so the scheduler, the worker and the embedded redis-server get the signal too, often
 * before the demo itself. Whoever gets it, the demo must be gone within a few seconds and leave
 * nothing running; a second signal while its clean-up is stuck forces the exit.
 */
const STOP_WITHIN_MS = 5_000;

/** A process's state letter from /proc (R, S, T, Z…), or undefined when there is no such process. */
function procState(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
    const [state = "", , pgrp = ""] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state, pgrp: Number(pgrp) };
  } catch {
    return undefined;
  }
}

/** True while the process exists and has not exited (a zombie waiting to be reaped has exited). */
function running(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s.state !== "Z" && s.state !== "X";
}

/** Pids of the process group's members that are still running. */
function groupMembers(pgid: number): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => procState(pid)?.pgrp === pgid && running(pid));
}

function portRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

interface Demo {
  readonly child: ChildProcess;
  /** Its process group (it leads a new one, as a shell job does). */
  readonly pgid: number;
  output(): string;
  /** Exit code (or signal) and when it exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  redisPort: number;
  pids: { redis: number; scheduler: number; worker: number };
}

const started: Demo[] = [];

function startDemo(): Demo {
  const dir = mkdtempSync(join(tmpdir(), "vmk-demo-stop-"));
  const child = spawn(process.execPath, [BINS.dev, "--interval", "1s", "--sessions", "3", "--dir", dir], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, REDIS_URL: "" },
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() })));
  const demo: Demo = { child, pgid: child.pid!, output: () => out, exited, redisPort: 0, pids: { redis: 0, scheduler: 0, worker: 0 } };
  started.push(demo);
  return demo;
}

async function waitForOutput(demo: Demo, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = pattern.exec(demo.output());
    if (hit) return hit;
    if (demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}) before writing ${String(pattern)}:\n${demo.output()}`);
    if (Date.now() > deadline) throw new Error(`the demo did not write ${String(pattern)} within ${timeoutMs} ms:\n${demo.output()}`);
    await sleep(50);
  }
}

/** Starts the demo and waits until keepalives have reached its backend (its first status line with pings). */
async function startDemoAndLetItRun(): Promise<Demo> {
  const demo = startDemo();
  const redis = await waitForOutput(demo, /embedded redis-server started on redis:\/\/127\.0\.0\.1:(\d+) \(pid (\d+)/);
  const programs = await waitForOutput(demo, /scheduler \(pid (\d+)\) and worker \(pid (\d+)\) started/);
  demo.redisPort = Number(redis[1]);
  demo.pids = { redis: Number(redis[2]), scheduler: Number(programs[1]), worker: Number(programs[2]) };
  await waitForOutput(demo, /keepalives flowing: [1-9]\d* pings received by the backend; 3 active pairs/);
  for (const pid of Object.values(demo.pids)) expect(running(pid), `pid ${pid} runs`).toBe(true);
  return demo;
}

/** Waits for the demo's exit, at most `withinMs` after `since`; fails with its output otherwise. */
async function exitWithin(demo: Demo, since: number, withinMs: number) {
  const late = sleep(Math.max(0, since + withinMs + 2_000 - Date.now())).then(() => undefined);
  const exit = await Promise.race([demo.exited, late]);
  expect(exit, `the demo still ran ${withinMs} ms after the signal:\n${demo.output()}`).toBeDefined();
  expect(exit!.at - since, demo.output()).toBeLessThan(withinMs);
  return exit!;
}

/** Nothing of the demo's is left: no member of its process group runs, its children are gone, the Redis port is closed. */
async function expectNothingLeft(demo: Demo): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (groupMembers(demo.pgid).length > 0 && Date.now() < deadline) await sleep(50);
  expect(groupMembers(demo.pgid), demo.output()).toEqual([]);
  for (const [name, pid] of Object.entries(demo.pids)) expect(running(pid), `${name} (pid ${pid}) is gone`).toBe(false);
  expect(await portRefused(demo.redisPort)).toBe(true);
}

afterEach(() => {
  // Never leave a demo behind, whatever the test asserted.
  for (const demo of started.splice(0)) {
    if (groupMembers(demo.pgid).length === 0) continue;
    try {
      process.kill(-demo.pgid, "SIGKILL");
    } catch {}
  }
});

describe("the demo stops promptly, whoever gets the signal", () => {
  it("SIGINT to its process group (Ctrl-C): exits 0 within seconds, nothing left running", async () => {
    const demo = await startDemoAndLetItRun();
    const sent = Date.now();
    process.kill(-demo.pgid, "SIGINT");
    const exit = await exitWithin(demo, sent, STOP_WITHIN_MS);
    expect(exit.code, demo.output()).toBe(0);
    expect(demo.output()).toMatch(/shutting down \(SIGINT\)/);
    expect(demo.output()).toContain("stopped; nothing left running");
    await expectNothingLeft(demo);
  });

  it("SIGTERM to the demo and then to its group (as timeout does): one stop request, exits 0 within seconds, nothing left running", async () => {
    const demo = await startDemoAndLetItRun();
    const sent = Date.now();
    process.kill(demo.pgid, "SIGTERM");
    // Apart enough to arrive as two signals (the kernel merges a signal that is still pending).
    await sleep(100);
    process.kill(-demo.pgid, "SIGTERM");
    const exit = await exitWithin(demo, sent, STOP_WITHIN_MS);
    expect(exit.code, demo.output()).toBe(0);
    expect(demo.output()).toContain("SIGTERM again within 500 ms: the same stop request");
    expect(demo.output()).not.toContain("forcing the stop");
    expect(demo.output()).toContain("stopped; nothing left running");
    await expectNothingLeft(demo);
  });

  it("a second SIGINT while the clean-up waits on a hung redis-server forces the exit at once (non-zero), nothing left running", async () => {
    const demo = await startDemoAndLetItRun();
    // A redis-server that accepts connections but never answers: the clean-up waits on it.
    process.kill(demo.pids.redis, "SIGSTOP");
    process.kill(-demo.pgid, "SIGINT");
    await waitForOutput(demo, /shutting down \(SIGINT\)/, 5_000);
    await sleep(1_000);
    expect(demo.child.exitCode, `the clean-up is still waiting on Redis:\n${demo.output()}`).toBeNull();
    const second = Date.now();
    process.kill(-demo.pgid, "SIGINT");
    const exit = await exitWithin(demo, second, 1_500);
    expect(exit.code, demo.output()).toBe(130);
    expect(demo.output()).toMatch(new RegExp(`SIGINT while stopping: forcing the stop; killed .*redis-server \\(pid ${demo.pids.redis}\\)`));
    expect(demo.output()).not.toContain("stopped; nothing left running");
    await expectNothingLeft(demo);
  });
});
