import type { Redis } from "ioredis";
import type { RedisTarget } from "@vmcp-keepalive/shared";
import { tlsClientOptions, type TestPki } from "@vmcp-keepalive/testkit";
import type { BenchBackend } from "./backend-process.js";
import type { BackendSession } from "./clients/sdk-clients.js";

/** Sizes of one run. `full` is `pnpm bench`; `smoke` is the CI run (tiny numbers, about a minute). */
export interface Sizes {
  readonly mode: "full" | "smoke";
  /** Concurrency of the plain loop and of each worker process (`keepalive.concurrency`). */
  readonly concurrency: number;
  /**
   * Backend sessions opened with `initialize`; pairs share them (the backend does not care).
   * At least 2 × `concurrency`: every plain-loop SDK client needs a session of its own.
   */
  readonly backendSessions: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly monitorMs: number;
  /** Pairs at a 1 s interval for the saturation runs: more due jobs than any worker can run. */
  readonly saturationPairs: number;
  readonly memoryPairsSmall: number;
  readonly memoryPairsLarge: number;
  /** Registrations per round of the queue-versus-stream registration phase. */
  readonly registrationPairs: number;
  /** Live sessions whose soft-state refresh is measured (one message each). */
  readonly refreshSessions: number;
  readonly flatPairs: number;
  readonly flatIntervalMs: number;
  readonly flatIntervals: number;
  /** Intervals of `flatIntervalMs` the plain BullMQ floor's steady window lasts. */
  readonly floorIntervals: number;
  /** Pairs on each server of the TLS phase (one plain, one TLS-only), at `tlsIntervalMs`: a steady rate, below saturation. */
  readonly tlsPairs: number;
  readonly tlsIntervalMs: number;
  /** Windows of `windowMs` the TLS phase measures both servers in. */
  readonly tlsWindows: number;
  /** Rounds (a window on Redis' defaults, then one on the shipped settings) of the settings phase, at the TLS phase's pairs and interval. */
  readonly settingsRounds: number;
  readonly outageMs: number;
  /** Call timeout of the workers (and the plain clients). */
  readonly timeoutMs: number;
}

export const FULL: Sizes = {
  mode: "full",
  concurrency: 32,
  backendSessions: 100,
  warmupMs: 3_000,
  windowMs: 10_000,
  monitorMs: 3_000,
  saturationPairs: 4_000,
  memoryPairsSmall: 10_000,
  memoryPairsLarge: 100_000,
  registrationPairs: 10_000,
  refreshSessions: 100_000,
  flatPairs: 10_000,
  flatIntervalMs: 20_000,
  flatIntervals: 3,
  floorIntervals: 2,
  tlsPairs: 2_500,
  tlsIntervalMs: 10_000,
  tlsWindows: 5,
  settingsRounds: 2,
  outageMs: 10_000,
  timeoutMs: 2_000,
};

export const SMOKE: Sizes = {
  mode: "smoke",
  concurrency: 8,
  backendSessions: 16,
  warmupMs: 300,
  windowMs: 1_000,
  monitorMs: 500,
  saturationPairs: 300,
  memoryPairsSmall: 300,
  memoryPairsLarge: 1_000,
  registrationPairs: 300,
  refreshSessions: 300,
  flatPairs: 150,
  flatIntervalMs: 1_500,
  flatIntervals: 2,
  floorIntervals: 1,
  tlsPairs: 100,
  tlsIntervalMs: 1_500,
  tlsWindows: 1,
  settingsRounds: 1,
  outageMs: 1_500,
  timeoutMs: 1_000,
};

/** What every phase shares: the dedicated redis-server, the backend, its sessions. */
export interface BenchContext {
  readonly sizes: Sizes;
  readonly redisUrl: string;
  /**
   * Set when the redis-server at `redisUrl` speaks TLS only, with this test CA, and requires its
   * client certificate: the programs' config (`redis.tls`) and the bench's own connections use it.
   */
  readonly redisTls?: TestPki | undefined;
  /** The bench's own connection (INFO, counting, FLUSHALL between phases). */
  readonly redis: Redis;
  /** The MCP backend every phase calls, in a process of its own. */
  readonly backend: BenchBackend;
  /** The backend answers JSON bodies (else, `--sse`, SSE streams): for a phase that starts a backend of its own. */
  readonly jsonResponse: boolean;
  readonly sessions: readonly BackendSession[];
  /** Directory for generated config files. */
  readonly dir: string;
  log(message: string): void;
}

/** The bench's Redis as a connection target (with its TLS when it has some). */
export function benchRedisTarget(ctx: BenchContext): RedisTarget {
  return { mode: "standalone", url: ctx.redisUrl, ...(ctx.redisTls ? { tls: tlsClientOptions(ctx.redisTls) } : {}) };
}

/** Backend id every phase registers its pairs under. */
export const BACKEND_ID = "bench-backend";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Snapshot of a counting window: backend call index, time, CPU of some processes. */
export interface Mark {
  readonly callIndex: number;
  readonly at: number;
}

export async function mark(backend: BenchBackend): Promise<Mark> {
  return { callIndex: await backend.callCount(), at: Date.now() };
}
