// The TypeScript side of the Go client's tests: reads one JSON request on stdin, answers JSON on
// stdout, with the workspace's built @vmcp-keepalive/shared (run `pnpm run build` first).
import { readFileSync } from "node:fs";
import { createCredentialKeyRing, createKeys, hashSlot, SealedCredentialsSchema, SessionMessageSchema } from "../../../packages/shared/dist/index.js";

const request = JSON.parse(readFileSync(0, "utf8"));
const schemaFile = new URL("../../../docs/session-messages.schema.json", import.meta.url);

function keysOf({ prefix, shards, tagged, sessions, backends }) {
  const k = createKeys(prefix, { shards, tagged });
  return {
    sessions: sessions.map((s) => ({
      shard: k.shardOf(s),
      session: k.session(s),
      pairs: backends.map((b) => ({ pair: k.pair(s, b), lock: k.pairLock(s, b) })),
      mutex: k.sessionMutex(s),
    })),
    backends: backends.map((b) => k.backend(b)),
    shardPrefixes: Array.from({ length: shards }, (_, i) => k.shardPrefix(i)),
    sessionsPrefix: k.sessionsQueue.prefix,
    eventsPrefix: k.eventsQueue.prefix,
    sessionMessages: k.sessionMessagesStream,
    sessionEvents: k.sessionEventsStream,
  };
}

/**
 * Validates one lifecycle message as the scheduler does. While the published message schema does
 * not yet describe session credentials, a message carrying them is checked in two halves: each
 * envelope against the key ring's envelope schema, the rest against the message schema.
 */
function validate(message) {
  const schemaKnowsCredentials = readFileSync(schemaFile, "utf8").includes("session.credentials_updated");
  const full = SessionMessageSchema.safeParse(message);
  if (full.success || schemaKnowsCredentials || !carriesCredentials(message)) {
    return full.success ? { ok: true } : { ok: false, error: full.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") };
  }
  const envelopes = [];
  const rest = structuredClone(message);
  if (rest.type === "session.registered") for (const b of rest.backends) if (b.credentials) (envelopes.push(b.credentials), delete b.credentials);
  if (rest.type === "session.touched" && rest.credentials) (envelopes.push(...Object.values(rest.credentials)), delete rest.credentials);
  if (rest.type === "session.credentials_updated") {
    envelopes.push(rest.credentials);
    delete rest.credentials;
    rest.type = "session.backend_reinitialized"; // the same fields once the envelope is set apart
  }
  for (const e of envelopes) {
    const r = SealedCredentialsSchema.safeParse(e);
    if (!r.success) return { ok: false, error: `credentials: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` };
  }
  const r = SessionMessageSchema.safeParse(rest);
  return r.success ? { ok: true, split: true } : { ok: false, error: r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") };
}

function carriesCredentials(m) {
  return m.credentials !== undefined || (Array.isArray(m.backends) && m.backends.some((b) => b.credentials !== undefined));
}

let answer;
switch (request.op) {
  case "keys":
    answer = request.layouts.map(keysOf);
    break;
  case "hashSlots":
    answer = request.keys.map((k) => hashSlot(k));
    break;
  case "seal": {
    const ring = createCredentialKeyRing(request.ring);
    answer = ring.seal(request.sessionId, request.backendId, { headers: request.headers, ...(request.expiresAt ? { expiresAt: request.expiresAt } : {}) });
    break;
  }
  case "open": {
    const ring = createCredentialKeyRing(request.ring);
    answer = ring.open(request.sessionId, request.backendId, request.sealed);
    break;
  }
  case "validate":
    answer = request.messages.map(validate);
    break;
  default:
    throw new Error(`interop: unknown op ${request.op}`);
}
process.stdout.write(JSON.stringify(answer));
