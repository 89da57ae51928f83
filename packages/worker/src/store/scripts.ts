import { loadLuaScript, type BreakerState, type LearnedMethod, type OffReason, type PairStatus, type RedisConnection } from "@vmcp-keepalive/shared";
import type { BreakerOp, MethodOp } from "../tick/plan.js";

/*
 * The scripts of one keepalive tick (packages/worker/lua/) and their boundary with TypeScript.
 * Where the pair and its backend share a node, one script begins a tick (pair lock, pair,
 * breaker) and one finishes it (outcome, breaker and fallback accounting, lock release): two of
 * our round trips per keepalive besides BullMQ's. On a Redis Cluster the backend hash has a slot
 * of its own (one breaker for the whole cluster), so each step runs as its pair half and its
 * backend half.
 *
 * Every one takes its input by name, as JSON in ARGV[1] — the same input for a step's combined
 * script and both its halves — and answers by name, a JSON reply (cjson.encode) decoded and
 * checked here, once: the rest of the worker sees only the types below.
 */
const dir = new URL("../../lua/", import.meta.url);

/** The pair lock as the tick's scripts hold it: begin takes it (`SET NX PX`) with this token and TTL. */
export interface ScriptLock {
  readonly token: string;
  readonly ttlMs: number;
}

/**
 * What a script says of the pair lock after its step (keep_lock in lua/includes/pair.lua):
 * `kept` — its lock stays held, the worker still has work under it; `released` — deleted by the
 * script; `none` — the scripts hold no lock (held outside them, or its TTL ran out).
 */
export type LockAfter = "kept" | "released" | "none";

/** ARGV[1] of lua/begin-tick-3.lua, begin-pair-2.lua and begin-breaker-1.lua, as JSON. */
export interface BeginRecord {
  readonly now: number;
  /** Present when the scripts hold the pair lock; absent when it is held outside them (a Redlock quorum). */
  readonly lock?: ScriptLock;
  readonly probeToken: string;
  readonly probeLeaseMs: number;
  readonly pingRetryDelayMs: number;
  readonly fallback: boolean;
  readonly trafficWindowMs: number;
  /** Absent: the pair's credentials are not checked. */
  readonly credentialsMarginMs?: number;
  readonly refreshBeforeMs: number;
}

/** The pair half's decisions: a skip reason, or `go` on to the backend half. */
export type PairDecision = "locked" | "ended" | "disabled" | "credentials_expired" | "recent_traffic" | "go";
export type BackendDecision = "breaker_open" | "call" | "probe";

/** The reply of lua/begin-breaker-1.lua: begin-tick-3.lua's `backend`. */
export interface BackendBeginReply {
  readonly decision: BackendDecision;
  /** The breaker state the decision was made on. */
  readonly breaker: BreakerState;
  readonly method: LearnedMethod;
  /** This tick claimed the ping retry of a backend on its tool. */
  readonly pingRetry: boolean;
}

/** The reply of lua/begin-pair-2.lua. */
export interface PairBeginReply {
  readonly decision: PairDecision;
  readonly lock: LockAfter;
  /** The pair hash as read; absent when there is no pair. */
  readonly pair?: Readonly<Record<string, string>>;
  readonly notice?: "expiring" | "expired";
}

/** The reply of lua/begin-tick-3.lua: the pair half's, and the backend half's when the pair half said `go`. */
export type BeginReply = (PairBeginReply & { readonly decision: Exclude<PairDecision, "go"> }) | (PairBeginReply & { readonly decision: "go"; readonly backend: BackendBeginReply });

/** Keepalive off for the pair's credentials, unless newer ones came (fenced on their message sequence; -1: none were stored). */
export interface PairStop {
  readonly off: Extract<OffReason, "no_credentials" | "credentials_undecryptable" | "unauthorized">;
  readonly credSeq: number;
}

/** What the pair half of a finish reads (lua/finish-pair-2.lua; record_pair and keep_lock in lua/includes/pair.lua). */
export interface PairFinishRecord {
  /** The pair epoch read under the lock: the fence. */
  readonly epoch: number;
  readonly now: number;
  /** `skipped`: a tick that made no call (only `lastAt` and `last` are recorded, and its stop). */
  readonly kind: "success" | "failure" | "skipped";
  readonly reason?: string;
  /** The pair's `last` field (`success`, `failure:timeout`). */
  readonly label: string;
  readonly latencyMs?: number;
  readonly pairStatus?: PairStatus;
  readonly stop?: PairStop;
  /** Present when the scripts hold the pair lock: deleted only while this token holds it. */
  readonly lock?: Pick<ScriptLock, "token">;
}

/** The breaker and method accounting of a finished tick: the plan's operations and the policy's numbers. */
export interface FinishAccounting {
  readonly breakerOp: BreakerOp;
  /** `breaker.failure_threshold`. */
  readonly failureThreshold: number;
  /** `breaker.min_failure_span`: the consecutive failures must also span this long to open the breaker. */
  readonly minFailureSpanMs: number;
  /** Time from now to the next probe if this tick opens or re-opens the breaker (jittered). */
  readonly probeDelayMs: number;
  /** Present when this tick holds the probe: the token it claimed it with. */
  readonly probeToken?: string;
  readonly methodOp?: MethodOp;
  /** `fallback.after_failures` (K). */
  readonly afterFailures: number;
  /** Time from now to the next ping retry if this tick switches to the tool (jittered). */
  readonly pingRetryDelayMs: number;
}

/** ARGV[1] of lua/finish-tick-3.lua, finish-pair-2.lua and finish-breaker-1.lua, as JSON: the pair half's fields and the backend half's. */
export interface FinishRecord extends PairFinishRecord, FinishAccounting {}

export type BreakerTransition = "opened" | "closed" | "reopened" | "released";
export type MethodTransition = "to_tool" | "to_ping";

/** The reply of lua/finish-breaker-1.lua: finish-tick-3.lua's `backend`. */
export interface BackendFinishReply {
  /** Set only in the one tick whose write made the transition. */
  readonly breakerTransition?: BreakerTransition;
  /** The backend's consecutive failures after this tick. */
  readonly breakerFailures: number;
  readonly methodTransition?: MethodTransition;
}

/** The reply of lua/finish-pair-2.lua. */
export interface PairFinishReply {
  readonly record: "recorded" | "fenced" | "gone";
  /** This write stopped the pair (expired, or off for its credentials). */
  readonly stopped: boolean;
  readonly lock: LockAfter;
}

/** The reply of lua/finish-tick-3.lua: the pair half's and the backend half's. */
export interface FinishReply extends PairFinishReply {
  readonly backend: BackendFinishReply;
}

/** A tick script by its input and reply types. */
export interface TickScript<In, Out> {
  run(redis: RedisConnection, keys: readonly string[], input: In): Promise<Out>;
}

type Reply = Readonly<Record<string, unknown>>;

/** Loads `file` and checks every reply with `decode`: a reply that breaks the contract fails the tick with an error naming the script and field. */
function tickScript<In, Out>(file: string, decode: (reply: Reply, field: FieldReader) => Out): TickScript<In, Out> {
  const script = loadLuaScript(dir, file);
  const field = fieldReader(script.name);
  return {
    async run(redis, keys, input) {
      const raw = await script.run(redis, keys, [JSON.stringify(input)]);
      const reply: unknown = typeof raw === "string" ? JSON.parse(raw) : undefined;
      if (!isObject(reply)) throw new Error(`script ${script.name} answered ${JSON.stringify(raw)}, not a JSON object`);
      return decode(reply, field);
    },
  };
}

interface FieldReader {
  /** The field, one of `allowed`. */
  oneOf<T extends string>(reply: Reply, name: string, allowed: readonly T[]): T;
  /** The field, one of `allowed`, or undefined when absent. */
  maybeOneOf<T extends string>(reply: Reply, name: string, allowed: readonly T[]): T | undefined;
  bool(reply: Reply, name: string): boolean;
  num(reply: Reply, name: string): number;
  /** An object of string values (a hash as read), or undefined when absent. */
  hash(reply: Reply, name: string): Readonly<Record<string, string>> | undefined;
  /** A nested reply. */
  object(reply: Reply, name: string): Reply;
}

const isObject = (v: unknown): v is Reply => v !== null && typeof v === "object" && !Array.isArray(v);

function fieldReader(scriptName: string): FieldReader {
  const wrong = (name: string, value: unknown, what: string) => new Error(`script ${scriptName} answered ${name} = ${JSON.stringify(value)}, not ${what}`);
  const reader: FieldReader = {
    oneOf(reply, name, allowed) {
      const v = reply[name];
      if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) throw wrong(name, v, allowed.join(" | "));
      return v as (typeof allowed)[number];
    },
    maybeOneOf(reply, name, allowed) {
      return reply[name] === undefined ? undefined : reader.oneOf(reply, name, allowed);
    },
    bool(reply, name) {
      const v = reply[name];
      if (typeof v !== "boolean") throw wrong(name, v, "a boolean");
      return v;
    },
    num(reply, name) {
      const v = reply[name];
      if (typeof v !== "number" || !Number.isFinite(v)) throw wrong(name, v, "a number");
      return v;
    },
    hash(reply, name) {
      const v = reply[name];
      if (v === undefined) return undefined;
      if (!isObject(v) || !Object.values(v).every((x) => typeof x === "string")) throw wrong(name, v, "an object of strings");
      return v as Readonly<Record<string, string>>;
    },
    object(reply, name) {
      const v = reply[name];
      if (!isObject(v)) throw wrong(name, v, "an object");
      return v;
    },
  };
  return reader;
}

const LOCK_AFTER = ["kept", "released", "none"] as const satisfies readonly LockAfter[];
const PAIR_DECISIONS = ["locked", "ended", "disabled", "credentials_expired", "recent_traffic", "go"] as const satisfies readonly PairDecision[];
const BACKEND_DECISIONS = ["breaker_open", "call", "probe"] as const satisfies readonly BackendDecision[];
const BREAKER_STATES = ["closed", "open", "probing"] as const satisfies readonly BreakerState[];
const METHODS = ["ping", "tool"] as const satisfies readonly LearnedMethod[];
const NOTICES = ["expiring", "expired"] as const;
const BREAKER_TRANSITIONS = ["opened", "closed", "reopened", "released"] as const satisfies readonly BreakerTransition[];
const METHOD_TRANSITIONS = ["to_tool", "to_ping"] as const satisfies readonly MethodTransition[];
const RECORDS = ["recorded", "fenced", "gone"] as const satisfies readonly FinishReply["record"][];

function backendBegin(r: Reply, f: FieldReader): BackendBeginReply {
  return { decision: f.oneOf(r, "decision", BACKEND_DECISIONS), breaker: f.oneOf(r, "breaker", BREAKER_STATES), method: f.oneOf(r, "method", METHODS), pingRetry: f.bool(r, "pingRetry") };
}

function backendFinish(r: Reply, f: FieldReader): BackendFinishReply {
  const breakerTransition = f.maybeOneOf(r, "breakerTransition", BREAKER_TRANSITIONS);
  const methodTransition = f.maybeOneOf(r, "methodTransition", METHOD_TRANSITIONS);
  return { ...(breakerTransition ? { breakerTransition } : {}), breakerFailures: f.num(r, "breakerFailures"), ...(methodTransition ? { methodTransition } : {}) };
}

function pairBegin(r: Reply, f: FieldReader): PairBeginReply {
  const pair = f.hash(r, "pair");
  const notice = f.maybeOneOf(r, "notice", NOTICES);
  return { decision: f.oneOf(r, "decision", PAIR_DECISIONS), lock: f.oneOf(r, "lock", LOCK_AFTER), ...(pair ? { pair } : {}), ...(notice ? { notice } : {}) };
}

/** The combined script answers the backend half's decision beside a pair half's `go`. */
function tickBegin(r: Reply, f: FieldReader): BeginReply {
  const half = pairBegin(r, f);
  return half.decision === "go" ? { ...half, decision: "go", backend: backendBegin(f.object(r, "backend"), f) } : { ...half, decision: half.decision };
}

function pairFinish(r: Reply, f: FieldReader): PairFinishReply {
  return { record: f.oneOf(r, "record", RECORDS), stopped: f.bool(r, "stopped"), lock: f.oneOf(r, "lock", LOCK_AFTER) };
}

export const BEGIN_TICK: TickScript<BeginRecord, BeginReply> = tickScript("begin-tick-3.lua", tickBegin);
export const FINISH_TICK: TickScript<FinishRecord, FinishReply> = tickScript("finish-tick-3.lua", (r, f) => ({ ...pairFinish(r, f), backend: backendFinish(f.object(r, "backend"), f) }));

export const BEGIN_PAIR: TickScript<BeginRecord, PairBeginReply> = tickScript("begin-pair-2.lua", pairBegin);
export const BEGIN_BREAKER: TickScript<BeginRecord, BackendBeginReply> = tickScript("begin-breaker-1.lua", backendBegin);
export const FINISH_PAIR: TickScript<PairFinishRecord, PairFinishReply> = tickScript("finish-pair-2.lua", pairFinish);
export const FINISH_BREAKER: TickScript<FinishRecord, BackendFinishReply> = tickScript("finish-breaker-1.lua", backendFinish);
