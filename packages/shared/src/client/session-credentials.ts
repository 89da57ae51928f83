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
 * vMCP already holds these tokens in memory; sealing happens at each send, so a refresh after a
 * change of the client's ring is sealed with the new key.
 */
export interface CredentialSealer {
  seal(sessionId: string, backendId: string, credentials: SessionCredentials): SealedCredentials;
  registration(sessionId: string, options: SessionOptions): RegisterOptions;
  byBackend(sessionId: string, credentials: ReadonlyMap<string, SessionCredentials>): Record<string, SealedCredentials>;
}

export function createCredentialSealer(keys: readonly CredentialKey[] | undefined): CredentialSealer {
  const ring = keys && keys.length > 0 ? createCredentialKeyRing(keys) : undefined;
  const seal = (sessionId: string, backendId: string, credentials: SessionCredentials): SealedCredentials => {
    if (!ring) throw new Error(`credentials for ${sessionId}/${backendId}: createVmcpClient needs credentialKeys to send session credentials`);
    return ring.seal(sessionId, backendId, credentials);
  };
  return {
    seal,
    registration: (sessionId, o) => ({
      sessionTtlMs: o.sessionTtlMs,
      ...(o.maxLifetimeMs === undefined ? {} : { maxLifetimeMs: o.maxLifetimeMs }),
      backends: o.backends.map(({ credentials, ...b }) => (credentials ? { ...b, credentials: seal(sessionId, b.backendId, credentials) } : b)),
    }),
    byBackend: (sessionId, credentials) => Object.fromEntries([...credentials].map(([backendId, c]) => [backendId, seal(sessionId, backendId, c)])),
  };
}
