import { fork, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { openBackendSession } from "@vmcp-keepalive/testkit";
import type { BackendSession } from "./clients/sdk-clients.js";

/** What the parent asks the backend process about its call record. */
export type BackendRequest =
  | { readonly op: "count" }
  | { readonly op: "pingsBetween"; readonly from: number; readonly to?: number }
  | { readonly op: "errorsBetween"; readonly from: number; readonly to?: number }
  | { readonly op: "pingTimes"; readonly fromMs: number; readonly toMs: number }
  | { readonly op: "clear" }
  /** Longest event-loop delay of the backend process since the last ask (then reset), ms. */
  | { readonly op: "loopDelayMaxMs" };

export interface BackendReply {
  readonly id: number;
  readonly value: number | number[];
}

/** The bench's MCP backend, running in its own process (clients/backend-server.ts). */
export interface BenchBackend {
  readonly url: string;
  readonly pid: number;
  /** Requests recorded so far: an index into the call record. */
  callCount(): Promise<number>;
  /** Pings received between two indexes of the call record (`to` = now). */
  pingsBetween(from: number, to?: number): Promise<number>;
  /** Requests the backend answered with an HTTP error status itself (404, 5xx) in that range. */
  errorsBetween(from: number, to?: number): Promise<number>;
  /** Arrival times (ms) of pings in [fromMs, toMs). */
  pingTimes(fromMs: number, toMs: number): Promise<number[]>;
  /** Longest event-loop delay of the backend process since the last call (then reset), ms. */
  loopDelayMaxMs(): Promise<number>;
  /** Forgets the call record (between phases). */
  clear(): Promise<void>;
  stop(): Promise<void>;
}

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "clients/backend-server.js");

export async function startBackendProcess(options: { readonly jsonResponse: boolean }): Promise<BenchBackend> {
  const child: ChildProcess = fork(SCRIPT, [JSON.stringify(options)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: process.env["BENCH_BACKEND_NODE_FLAGS"]?.split(" ").filter(Boolean) ?? [],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const onMessage = (m: { ready?: string }) => {
      if (typeof m.ready === "string") {
        child.off("message", onMessage);
        resolve(m.ready);
      }
    };
    child.on("message", onMessage);
    child.once("exit", (code) => reject(new Error(`bench backend exited with ${code} before it was ready`)));
  });
  let next = 0;
  const pending = new Map<number, (value: number | number[]) => void>();
  child.on("message", (m: BackendReply) => {
    const done = pending.get(m.id);
    if (done) {
      pending.delete(m.id);
      done(m.value);
    }
  });
  const ask = (req: BackendRequest) =>
    new Promise<number | number[]>((resolve, reject) => {
      const id = next++;
      pending.set(id, resolve);
      child.send({ ...req, id }, (err) => {
        if (err) {
          pending.delete(id);
          reject(err);
        }
      });
    });
  return {
    url,
    pid: child.pid ?? -1,
    callCount: async () => (await ask({ op: "count" })) as number,
    pingsBetween: async (from, to) => (await ask({ op: "pingsBetween", from, ...(to === undefined ? {} : { to }) })) as number,
    errorsBetween: async (from, to) => (await ask({ op: "errorsBetween", from, ...(to === undefined ? {} : { to }) })) as number,
    pingTimes: async (fromMs, toMs) => (await ask({ op: "pingTimes", fromMs, toMs })) as number[],
    clear: async () => void (await ask({ op: "clear" })),
    loopDelayMaxMs: async () => (await ask({ op: "loopDelayMaxMs" })) as number,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.kill("SIGTERM");
        await exited;
        clearTimeout(force);
      }
    },
  };
}

/** A fresh backend process with `sessions` backend sessions opened on it (`initialize`), its call record cleared. */
export async function openBenchBackend(jsonResponse: boolean, sessions: number): Promise<{ backend: BenchBackend; sessions: BackendSession[] }> {
  const backend = await startBackendProcess({ jsonResponse });
  try {
    const opened: BackendSession[] = [];
    for (let i = 0; i < sessions; i++) opened.push(await openBackendSession(backend.url));
    await backend.clear();
    return { backend, sessions: opened };
  } catch (err) {
    await backend.stop();
    throw err;
  }
}
