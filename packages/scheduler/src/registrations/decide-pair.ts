import type { BackendConfig } from "@vmcp-keepalive/runtime";
import type { BackendRegistration, OffReason, SessionRegistered } from "@vmcp-keepalive/shared";
import type { PairDecision } from "../store/session-store.js";

/**
 * Whether a registered pair gets keepalives (docs/keepalive-policy.md, "Off by default"):
 * - `keepalive_method: none` never;
 * - no backend session id (stateless revisions have neither sessions nor ping): never — there is
 *   nothing to keep alive, whatever the method says;
 * - `stateful: false`, or a `session_ttl` ≥ the vMCP session's maximum lifetime: off unless the
 *   backend sets `keepalive_method` explicitly;
 * - `auth: session` without credentials (carried here or stored from an earlier message): off,
 *   `no_credentials` — decided where the stored ones are read, in the registration's script.
 */
export function decidePair(backend: BackendConfig, registration: BackendRegistration, sessionMessage: Pick<SessionRegistered, "maxLifetimeMs">): PairDecision {
  const session = backend.auth === "session";
  const credentials = session ? { credentials: registration.credentials, needsCredentials: true } : {};
  const off = (reason: OffReason): PairDecision => ({
    backendId: backend.id,
    backendSessionId: registration.backendSessionId,
    protocolVersion: registration.protocolVersion,
    status: "off",
    offReason: reason,
    ...credentials,
  });
  if (backend.method.kind === "none") return off("method_none");
  if (!registration.backendSessionId) return off("no_backend_session");
  if (!backend.methodExplicit) {
    if (!backend.stateful) return off("stateless_backend");
    if (backend.sessionTtlMs !== undefined && sessionMessage.maxLifetimeMs !== undefined && backend.sessionTtlMs >= sessionMessage.maxLifetimeMs) {
      return off("ttl_covers_session");
    }
  }
  return {
    backendId: backend.id,
    backendSessionId: registration.backendSessionId,
    protocolVersion: registration.protocolVersion,
    status: "active",
    offReason: undefined,
    ...credentials,
  };
}
