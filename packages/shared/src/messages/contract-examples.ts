import type { VmcpEvent } from "../events/vmcp-events.js";
import type { SealedCredentials } from "../credentials/credential-key-ring.js";
import type { SessionMessage } from "./schema.js";

/*
 * One example of every lifecycle message type and every event type, published as
 * docs/examples/<type>.json (`pnpm --filter @vmcp-keepalive/shared gen:schema`) for the clients'
 * tests: a client in any language reads or writes each of them, so a type or a field it does not
 * handle shows up there. Hence each example sets every optional field its type has, and the types
 * below make a missing type or a missing optional field a compile error.
 *
 * Fixed values: session `s-1` of replica `replica-1` with backend `b1`, on 2026-12-07 (UTC);
 * each `sequence` is the message's `occurredAt` in ms × 1000, as the clients make it. The envelopes are real: sealed with AES-256-GCM under an example key (id `k1`; the key
 * is in test/contract-examples.test.ts, which opens them) around `{"headers":{"Authorization":
 * "Bearer example-token-a"}}` (registration and touch) and `…-token-b` (the update).
 */

/** `T` with every optional field present, at every depth. */
type Complete<T> = T extends readonly (infer E)[] ? Complete<E>[] : T extends object ? { readonly [K in keyof T]-?: Complete<Exclude<T[K], undefined>> } : T;

/** One complete example per type of the union `U`, by type. */
export type ContractExamples<U extends { type: string }> = { readonly [T in U["type"]]: Complete<Extract<U, { type: T }>> };

const TOKEN_A_UNTIL_1300: Complete<SealedCredentials> = {
  v: 1,
  kid: "k1",
  iv: "EBceJSwzOkFIT1Zd",
  tag: "Yab92TIjurVJyhzZuEcW6A==",
  data: "oLXOrUwOQr1xsF2zJXMcbL4wb3oX2Er8FM2G9BVcr3vVv8vvIV2olkUlff6yF8Rww76CyGKS",
  expiresAt: 1796648400000,
};

/** The same credentials sealed again (a new nonce), as a touch sends them. */
const TOKEN_A_UNTIL_1300_RESEALED: Complete<SealedCredentials> = {
  v: 1,
  kid: "k1",
  iv: "ICcuNTxDSlFYX2Zt",
  tag: "vRUuD8u1FbBvG0RYcmx85g==",
  data: "hs4Ncuqy1DuI1BDI8trDMvIMuTPel3u/rF9DLjDJaTnI/zq2lGLqZy0mks8er93qRkOF3yG2",
  expiresAt: 1796648400000,
};

const TOKEN_B_UNTIL_1400: Complete<SealedCredentials> = {
  v: 1,
  kid: "k1",
  iv: "MDc+RUxTWmFob3Z9",
  tag: "NYjdMo9NlecNgdYR/tqrcg==",
  data: "UXTJxjpg/lhQWVCjVSeAL51j2miMkptCrp35E0NRjb9VgW3zEbFMSqyM5q8gOp71dxGLfNq5",
  expiresAt: 1796652000000,
};

export const SESSION_MESSAGE_EXAMPLES: ContractExamples<SessionMessage> = {
  "session.registered": {
    type: "session.registered",
    v: 1,
    sessionId: "s-1",
    occurredAt: "2026-12-07T12:00:00.000Z",
    sequence: 1796644800000000,
    replicaId: "replica-1",
    sessionTtlMs: 1_800_000,
    maxLifetimeMs: 43_200_000,
    backends: [{ backendId: "b1", backendSessionId: "mcp-session-7f3c9a2e", protocolVersion: "2025-06-18", credentials: TOKEN_A_UNTIL_1300 }],
  },
  "session.touched": {
    type: "session.touched",
    v: 1,
    sessionId: "s-1",
    occurredAt: "2026-12-07T12:05:00.000Z",
    sequence: 1796645100000000,
    backendIds: ["b1"],
    credentials: { b1: TOKEN_A_UNTIL_1300_RESEALED },
  },
  "session.backend_reinitialized": {
    type: "session.backend_reinitialized",
    v: 1,
    sessionId: "s-1",
    occurredAt: "2026-12-07T12:20:00.000Z",
    sequence: 1796646000000000,
    backendId: "b1",
  },
  "session.credentials_updated": {
    type: "session.credentials_updated",
    v: 1,
    sessionId: "s-1",
    occurredAt: "2026-12-07T12:50:00.000Z",
    sequence: 1796647800000000,
    backendId: "b1",
    credentials: TOKEN_B_UNTIL_1400,
  },
  "session.ended": {
    type: "session.ended",
    v: 1,
    sessionId: "s-1",
    occurredAt: "2026-12-07T14:30:00.000Z",
    sequence: 1796653800000000,
    reason: "logout",
  },
};

export const VMCP_EVENT_EXAMPLES: ContractExamples<VmcpEvent> = {
  "backend.breaker_opened": {
    type: "backend.breaker_opened",
    v: 1,
    occurredAt: "2026-12-07T12:02:00.000Z",
    backendId: "b1",
    reason: "timeout",
    consecutiveFailures: 5,
    probeAt: "2026-12-07T12:03:00.000Z",
  },
  "backend.breaker_closed": {
    type: "backend.breaker_closed",
    v: 1,
    occurredAt: "2026-12-07T12:03:00.000Z",
    backendId: "b1",
  },
  "backend.unauthorized": {
    type: "backend.unauthorized",
    v: 1,
    occurredAt: "2026-12-07T12:10:00.000Z",
    sessionId: "s-1",
    backendId: "b1",
    status: 401,
  },
  "backend.session_expired": {
    type: "backend.session_expired",
    v: 1,
    occurredAt: "2026-12-07T12:15:00.000Z",
    sessionId: "s-1",
    backendId: "b1",
    backendSessionId: "mcp-session-7f3c9a2e",
  },
  "backend.credentials_expiring": {
    type: "backend.credentials_expiring",
    v: 1,
    occurredAt: "2026-12-07T12:45:00.000Z",
    sessionId: "s-1",
    backendId: "b1",
    expiresAt: "2026-12-07T13:00:00.000Z",
  },
  "backend.credentials_expired": {
    type: "backend.credentials_expired",
    v: 1,
    occurredAt: "2026-12-07T14:00:00.000Z",
    sessionId: "s-1",
    backendId: "b1",
    expiresAt: "2026-12-07T14:00:00.000Z",
  },
};

/** The example files of docs/examples/ by file name (`<type>.json`), messages first. */
export function contractExamples(): Record<string, SessionMessage | VmcpEvent> {
  const all: (SessionMessage | VmcpEvent)[] = [...Object.values(SESSION_MESSAGE_EXAMPLES), ...Object.values(VMCP_EVENT_EXAMPLES)];
  return Object.fromEntries(all.map((example) => [`${example.type}.json`, example]));
}
