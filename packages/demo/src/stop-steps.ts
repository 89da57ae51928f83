import type { ChildProcess } from "node:child_process";
import type { SessionPublisher } from "@vmcp-keepalive/shared";

/** Writes one line of the demo's output. */
export type Say = (line: string) => void;

/**
 * Runs one clean-up step for at most `deadlineMs` and says how it ended: done (with the step's
 * own detail), failed, or no answer by the deadline — then the stop moves on, so a step that
 * waits on something gone (a stopped Redis, a hung child) cannot hold up the others. Never
 * throws; resolves true when the step finished in time.
 */
export async function boundedStep(say: Say, what: string, deadlineMs: number, run: () => Promise<string | void>): Promise<boolean> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const overran = new Promise<"overran">((resolve) => {
    timer = setTimeout(() => resolve("overran"), deadlineMs);
  });
  const outcome = await Promise.race([
    run().then(
      (detail) => ({ ok: true as const, detail }),
      (err: unknown) => ({ ok: false as const, detail: err instanceof Error ? err.message : String(err) }),
    ),
    overran,
  ]);
  clearTimeout(timer);
  const took = `${Date.now() - started} ms`;
  if (outcome === "overran") say(`  ${what}: no answer within ${deadlineMs} ms; moving on`);
  else if (outcome.ok) say(`  ${what}${outcome.detail ? `: ${outcome.detail}` : ""} (${took})`);
  else say(`  ${what} failed: ${outcome.detail} (${took})`);
  return outcome !== "overran" && outcome.ok;
}

/** True until the child has exited (its exit code or signal is known). */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** True while a process with this pid exists (a child of ours is reaped as soon as it exits). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL to a pid; false when there was no such process any more. */
export function killPid(pid: number): boolean {
  try {
    process.kill(pid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}

const howItEnded = (child: ChildProcess) => (child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`);

/**
 * Stops a child process. A signal sent to the whole process group (Ctrl-C) has reached it too,
 * and a SIGTERM now would be its second, which makes the programs skip their clean stop: so it
 * first gets `ownStopMs` to exit by itself, then SIGTERM, then SIGKILL `graceMs` later.
 * Resolves with how it ended.
 */
export async function stopChild(child: ChildProcess, options: { ownStopMs: number; graceMs: number }): Promise<string> {
  if (!isRunning(child)) return `had already exited (${howItEnded(child)})`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const within = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
  if (await within(options.ownStopMs)) return `exited (${howItEnded(child)})`;
  child.kill("SIGTERM");
  if (await within(options.graceMs)) return `exited on SIGTERM (${howItEnded(child)})`;
  child.kill("SIGKILL");
  await exited;
  return `killed (SIGKILL): still running ${options.graceMs} ms after SIGTERM`;
}

/** Publishes session.ended for every session at once; rejects naming how many failed and the first error. */
export async function endSessions(publisher: SessionPublisher, sessionIds: readonly string[], reason: string): Promise<void> {
  const results = await Promise.allSettled(sessionIds.map((id) => publisher.end(id, reason)));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed.length > 0) throw new Error(`${failed.length} of ${sessionIds.length}: ${String((failed[0]!.reason as Error).message)}`);
}
