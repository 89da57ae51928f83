import type { CredentialKeyRing, PairState, SealedCredentials } from "@vmcp-keepalive/shared";
import type { PairStop } from "../store/tick-store.js";

/** The stop of a pair whose credentials give no headers: off until new ones come. */
export type CredentialsStop = PairStop & { readonly off: "no_credentials" | "credentials_undecryptable" };

/** Why a pair's credentials give no headers: none stored, or no key of the ring opens them (and why not). */
export type UnopenedWhy = "none" | "unknown_key" | "undecryptable" | "malformed" | "no_key_ring";

/**
 * Opens an `auth: session` pair's stored credentials, in memory, for one tick: the headers to
 * send, or the stop that turns the pair off until new credentials come. Runs on every call of
 * such a pair, so it parses the envelope once and checks its shape by hand; the key ring checks
 * the rest, and AES-GCM refuses any byte that changed.
 */
export function openPairCredentials(
  ring: CredentialKeyRing | undefined,
  pair: Pick<PairState, "sessionId" | "backendId" | "credentials">,
): { readonly headers: Readonly<Record<string, string>> } | { readonly stop: CredentialsStop; readonly why: UnopenedWhy } {
  const stored = pair.credentials;
  if (!stored) return { stop: { off: "no_credentials", credSeq: -1 }, why: "none" };
  const stop: CredentialsStop = { off: "credentials_undecryptable", credSeq: stored.sequence };
  const sealed = envelopeOf(stored.sealed);
  if (!sealed) return { stop, why: "malformed" };
  if (!ring) return { stop, why: "no_key_ring" };
  const opened = ring.open(pair.sessionId, pair.backendId, sealed);
  return opened.ok ? { headers: opened.credentials.headers } : { stop, why: opened.reason };
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
