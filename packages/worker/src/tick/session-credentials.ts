import type { CredentialKeyRing, PairState, SealedCredentials } from "@vmcp-keepalive/shared";
import type { PairStop } from "../store/scripts.js";

/** The stop of a pair whose credentials give no headers: off until new ones come. */
export type CredentialsStop = PairStop & { readonly off: "no_credentials" | "credentials_undecryptable" };

/** Why a pair's credentials give no headers and turn it off: none stored, or they cannot be opened (and why). */
export type UnopenedWhy = "none" | "undecryptable" | "malformed" | "no_key_ring";

/** What a tick may do with a pair's stored credentials. */
export type OpenedCredentials =
  /** Call with these headers. */
  | { readonly headers: Readonly<Record<string, string>> }
  /** No call; the pair goes off until new credentials come. */
  | { readonly stop: CredentialsStop; readonly why: UnopenedWhy }
  /**
   * No call, and the pair stays on: its envelope names a key id this worker's ring lacks — a key
   * rotation under way, with the vMCPs sealing with a key not every worker has yet. A worker that
   * has the key opens them at a later tick, without new credentials.
   */
  | { readonly wait: "credentials_unknown_key"; readonly keyId: string };

/**
 * Opens an `auth: session` pair's stored credentials, in memory, for one tick. Runs on every call
 * of such a pair, so it parses the envelope once and checks its shape by hand; the key ring checks
 * the rest, and AES-GCM refuses any byte that changed.
 */
export function openPairCredentials(ring: CredentialKeyRing | undefined, pair: Pick<PairState, "sessionId" | "backendId" | "credentials">): OpenedCredentials {
  const stored = pair.credentials;
  if (!stored) return { stop: { off: "no_credentials", credSeq: -1 }, why: "none" };
  const stop: CredentialsStop = { off: "credentials_undecryptable", credSeq: stored.sequence };
  const sealed = envelopeOf(stored.sealed);
  if (!sealed) return { stop, why: "malformed" };
  if (!ring) return { stop, why: "no_key_ring" };
  const opened = ring.open(pair.sessionId, pair.backendId, sealed);
  if (opened.ok) return { headers: opened.credentials.headers };
  return opened.reason === "unknown_key" ? { wait: "credentials_unknown_key", keyId: sealed.kid } : { stop, why: opened.reason };
}

/** The stored envelope, as the scheduler stored it after the message schema checked it; its shape only. */
function envelopeOf(json: string): SealedCredentials | undefined {
  let e: Partial<Record<keyof SealedCredentials, unknown>>;
  try {
    e = JSON.parse(json) as typeof e;
  } catch {
    return undefined;
  }
  const ok =
    typeof e === "object" &&
    e !== null &&
    e.v === 1 &&
    typeof e.kid === "string" &&
    typeof e.iv === "string" &&
    typeof e.tag === "string" &&
    typeof e.data === "string" &&
    (e.expiresAt === undefined || typeof e.expiresAt === "number");
  return ok ? (e as SealedCredentials) : undefined;
}
