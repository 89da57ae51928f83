import { createCredentialKeyRing, type CredentialKey, type SealedCredentials, type SessionCredentials } from "../credentials/credential-key-ring.js";
import type { BackendRegistration } from "../messages/schema.js";
import type { RegisterOptions } from "./session-publisher.js";

/** One backend of a session as the vMCP gives it: its credentials in the clear, sealed by the client. */
export type SessionBackend = Omit<BackendRegistration, "credentials"> & {
  /** For a backend with `auth: session`: the headers this session uses for it (sealed before they leave this process). */
  readonly credentials?: SessionCredentials;
};

/** What `registerSession` takes. */
export interface SessionOptions {
  /** Sliding vMCP session TTL. */
  readonly sessionTtlMs: number;
  readonly maxLifetimeMs?: number;
  readonly backends: readonly SessionBackend[];
}

/**
 * Seals a session's credentials for the workers with the client's key ring (its first key). The
 * same credentials for the same pair get the same envelope again (the last one is remembered per
 * pair): the scheduler takes only a different envelope for new credentials, so a refresh or a
 * touch that repeats a refused token does not turn its pair back on.
 */
export interface CredentialSealer {
  seal(sessionId: string, backendId: string, credentials: SessionCredentials): SealedCredentials;
  registration(sessionId: string, options: SessionOptions): RegisterOptions;
  byBackend(sessionId: string, credentials: ReadonlyMap<string, SessionCredentials>): Record<string, SealedCredentials>;
  /** The session ended: forget its envelopes. */
  forget(sessionId: string): void;
}

export function createCredentialSealer(keys: readonly CredentialKey[] | undefined): CredentialSealer {
  const ring = keys && keys.length > 0 ? createCredentialKeyRing(keys) : undefined;
  const last = new Map<string, Map<string, { readonly content: string; readonly sealed: SealedCredentials }>>();
  const seal = (sessionId: string, backendId: string, credentials: SessionCredentials): SealedCredentials => {
    if (!ring) throw new Error(`credentials for ${sessionId}/${backendId}: createVmcpClient needs credentialKeys to send session credentials`);
    const content = JSON.stringify([credentials.headers, credentials.expiresAt ?? null]);
    let pairs = last.get(sessionId);
    const known = pairs?.get(backendId);
    if (known?.content === content) return known.sealed;
    const sealed = ring.seal(sessionId, backendId, credentials);
    if (!pairs) last.set(sessionId, (pairs = new Map()));
    pairs.set(backendId, { content, sealed });
    return sealed;
  };
  return {
    forget: (sessionId) => void last.delete(sessionId),
    seal,
    registration: (sessionId, o) => ({
      sessionTtlMs: o.sessionTtlMs,
      ...(o.maxLifetimeMs === undefined ? {} : { maxLifetimeMs: o.maxLifetimeMs }),
      backends: o.backends.map(({ credentials, ...b }) => (credentials ? { ...b, credentials: seal(sessionId, b.backendId, credentials) } : b)),
    }),
    byBackend: (sessionId, credentials) => Object.fromEntries([...credentials].map(([backendId, c]) => [backendId, seal(sessionId, backendId, c)])),
  };
}
