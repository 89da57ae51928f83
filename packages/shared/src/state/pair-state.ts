import type { FailureReason, OffReason, SkipReason } from "../errors/reasons.js";

/** Status of a pair: kept alive, off from the start (with a reason), or its backend session expired. */
export type PairStatus = "active" | "off" | "expired";

export type KeepaliveOutcome = { readonly kind: "success" } | { readonly kind: "failure"; readonly reason: FailureReason } | { readonly kind: "skipped"; readonly reason: SkipReason };

/** One session×backend pair as stored in Redis (hash `<shard prefix>:pair:<sessionId>:<backendId>`). */
export interface PairState {
  readonly sessionId: string;
  readonly backendId: string;
  readonly backendSessionId: string | undefined;
  readonly protocolVersion: string | undefined;
  /** Bumped on every new backend session id; all worker writes are fenced on it. */
  readonly epoch: number;
  readonly status: PairStatus;
  readonly offReason: OffReason | undefined;
  readonly registeredAt: number | undefined;
  readonly lastAttemptAt: number | undefined;
  readonly lastOutcome: string | undefined;
  readonly lastSuccessAt: number | undefined;
  readonly lastFailureAt: number | undefined;
  readonly lastFailureReason: FailureReason | undefined;
  readonly consecutiveFailures: number;
  readonly lastLatencyMs: number | undefined;
  readonly lastTrafficAt: number | undefined;
  /**
   * The pair's session credentials as anyone but a worker may see them: present, the id of the
   * key that sealed them, when they expire. `sealed` is the envelope as the vMCP sent it (only a
   * worker opens it).
   */
  readonly credentials: PairCredentials | undefined;
}

export interface PairCredentials {
  readonly keyId: string;
  readonly expiresAt: number | undefined;
  /** The sequence of the message that brought them: a worker's stop for these credentials is fenced on it. */
  readonly sequence: number;
  readonly sealed: string;
  /** The expiry notice already published for them. */
  readonly notice: "expiring" | "expired" | undefined;
}

/**
 * Hash field names (short names keep per-pair memory low; see docs/contract.md). The session and
 * backend ids are the key's, not fields; `status`, `off` and `fails` are absent at their default
 * (`active`, none, 0).
 */
export const PAIR_FIELDS = {
  backendSessionId: "bsid",
  protocolVersion: "pv",
  epoch: "epoch",
  status: "status",
  offReason: "off",
  registeredAt: "regAt",
  lastAttemptAt: "lastAt",
  lastOutcome: "last",
  lastSuccessAt: "okAt",
  lastFailureAt: "failAt",
  lastFailureReason: "failReason",
  consecutiveFailures: "fails",
  lastLatencyMs: "latMs",
  /** When the pair last carried real traffic, as the vMCP reported it (`session.touched` backendIds). */
  lastTrafficAt: "trafficAt",
  /** Session credentials: the sealed envelope (JSON, as the vMCP sent it), the message sequence that wrote it, its expiry (ms), the notice published. */
  credentials: "cred",
  credentialsSequence: "credSeq",
  credentialsExpireAt: "credExp",
  credentialsNotice: "credNote",
} as const;

const num = (v: string | undefined): number | undefined => (v === undefined || v === "" ? undefined : Number(v));
const str = (v: string | undefined): string | undefined => (v === undefined || v === "" ? undefined : v);

/** Decodes the HGETALL reply of the pair `sessionId`×`backendId`; undefined when the pair does not exist (every pair has an epoch). */
export function decodePair(hash: Record<string, string>, sessionId: string, backendId: string): PairState | undefined {
  const F = PAIR_FIELDS;
  if (hash[F.epoch] === undefined) return undefined;
  return {
    sessionId,
    backendId,
    backendSessionId: str(hash[F.backendSessionId]),
    protocolVersion: str(hash[F.protocolVersion]),
    epoch: num(hash[F.epoch]) ?? 0,
    status: (str(hash[F.status]) ?? "active") as PairStatus,
    offReason: str(hash[F.offReason]) as OffReason | undefined,
    registeredAt: num(hash[F.registeredAt]),
    lastAttemptAt: num(hash[F.lastAttemptAt]),
    lastOutcome: str(hash[F.lastOutcome]),
    lastSuccessAt: num(hash[F.lastSuccessAt]),
    lastFailureAt: num(hash[F.lastFailureAt]),
    lastFailureReason: str(hash[F.lastFailureReason]) as FailureReason | undefined,
    consecutiveFailures: num(hash[F.consecutiveFailures]) ?? 0,
    lastLatencyMs: num(hash[F.lastLatencyMs]),
    lastTrafficAt: num(hash[F.lastTrafficAt]),
    credentials: decodeCredentials(hash),
  };
}

function decodeCredentials(hash: Record<string, string>): PairCredentials | undefined {
  const F = PAIR_FIELDS;
  const sealed = str(hash[F.credentials]);
  if (!sealed) return undefined;
  // The key id without parsing the whole envelope (read on every tick): stored as the schema
  // checked it, `"kid":"<id>"` with an id of the id alphabet; "?" if it was written some other way.
  const keyId = /"kid":"([A-Za-z0-9._-]{1,128})"/.exec(sealed)?.[1] ?? "?";
  const notice = str(hash[F.credentialsNotice]);
  return {
    keyId,
    expiresAt: num(hash[F.credentialsExpireAt]),
    sequence: num(hash[F.credentialsSequence]) ?? 0,
    sealed,
    notice: notice === "expiring" || notice === "expired" ? notice : undefined,
  };
}

/** `success`, `failure:timeout`, `skipped:locked` — the `last` field and the job's return value. */
export function outcomeLabel(outcome: KeepaliveOutcome): string {
  return outcome.kind === "success" ? "success" : `${outcome.kind}:${outcome.reason}`;
}
