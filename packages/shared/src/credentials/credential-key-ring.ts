import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { z } from "zod";
import { ID_PATTERN, ID_RULE } from "../names.js";

/*
 * The envelope of a pair's session credentials (the headers a vMCP sends a backend that
 * authenticates every user), sealed by the vMCP and opened only by a worker, for one call. It is
 * plain AES-256-GCM so that any language can produce it:
 *
 *   { "v": 1, "kid": "<key id>", "iv": "<12 bytes>", "tag": "<16 bytes>", "data": "<ciphertext>",
 *     "expiresAt": <ms since the epoch, optional> }
 *
 * `iv`, `tag` and `data` are standard base64. The plaintext is the UTF-8 JSON `{"headers":{…}}`.
 * The associated data is the UTF-8 string `vmk-credentials:1:<sessionId>:<backendId>:<expiresAt>`
 * (`expiresAt` in ms, empty when absent; ids never contain `:`), so a ciphertext copied onto
 * another pair, or given a later expiry, does not open. `expiresAt` travels in the clear because
 * the scheduler and the status command show it without the key.
 */

/** One key of the ring: an id (named in every ciphertext) and 32 random bytes, base64. */
export interface CredentialKey {
  readonly id: string;
  readonly key: string;
}

export const SealedCredentialsSchema = z
  .object({
    v: z.literal(1),
    kid: z.string().regex(ID_PATTERN, `must be ${ID_RULE}`),
    iv: z.string().base64().max(24),
    tag: z.string().base64().max(32),
    data: z.string().base64().max(16_384),
    expiresAt: z.number().int().positive().optional(),
  })
  .strict();

export type SealedCredentials = z.infer<typeof SealedCredentialsSchema>;

/** What a vMCP hands over for one pair. */
export interface SessionCredentials {
  readonly headers: Readonly<Record<string, string>>;
  /** When the token stops being valid (ms since the epoch). */
  readonly expiresAt?: number;
}

export type OpenResult =
  | { readonly ok: true; readonly credentials: SessionCredentials }
  /** `unknown_key`: no key of the ring has this id; `undecryptable`: the key is known but the data, tag, or associated data do not match. */
  | { readonly ok: false; readonly reason: "unknown_key" | "undecryptable"; readonly kid: string };

/** A key ring shared by the vMCPs and the workers: the first key seals, every key opens (rotation without downtime). */
export interface CredentialKeyRing {
  /** The id of the key that seals. */
  readonly sealingKeyId: string;
  seal(sessionId: string, backendId: string, credentials: SessionCredentials): SealedCredentials;
  open(sessionId: string, backendId: string, sealed: SealedCredentials): OpenResult;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

function associatedData(sessionId: string, backendId: string, expiresAt: number | undefined): Buffer {
  return Buffer.from(`vmk-credentials:1:${sessionId}:${backendId}:${expiresAt ?? ""}`, "utf8");
}

/**
 * Headers a vMCP may hand over: HTTP token names, values of visible ASCII (and space or tab),
 * at most 32. The names the worker sets itself for every call (the session id, the protocol
 * version, the body's type) are refused: credentials add authentication, they do not redirect a
 * call onto another session.
 */
export const RESERVED_CREDENTIAL_HEADERS = ["mcp-session-id", "mcp-protocol-version", "content-type", "content-length", "accept", "host", "connection", "transfer-encoding"] as const;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const HEADER_VALUE = /^[\t\x20-\x7E]{0,8192}$/;

/**
 * What is wrong with a set of credential headers, each problem with the header's name (never its
 * value); empty when they may be sent. Plain loops: a worker checks every pair's on every call.
 */
export function credentialHeaderProblems(headers: unknown): { path: string[]; message: string }[] {
  if (typeof headers !== "object" || headers === null || Array.isArray(headers)) return [{ path: [], message: "must be an object of header names to values" }];
  const problems: { path: string[]; message: string }[] = [];
  const names = Object.keys(headers);
  if (names.length < 1 || names.length > 32) problems.push({ path: [], message: "must hold 1 to 32 headers" });
  for (const name of names) {
    const value = (headers as Record<string, unknown>)[name];
    if (!HEADER_NAME.test(name)) problems.push({ path: [name], message: "must be an HTTP header name" });
    else if ((RESERVED_CREDENTIAL_HEADERS as readonly string[]).includes(name.toLowerCase())) problems.push({ path: [name], message: "is set by the worker itself" });
    if (typeof value !== "string" || !HEADER_VALUE.test(value)) problems.push({ path: [name], message: "must be at most 8192 characters of visible ASCII, space or tab" });
  }
  return problems;
}

export const CredentialHeadersSchema = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  for (const p of credentialHeaderProblems(headers)) ctx.addIssue({ code: "custom", path: p.path, message: p.message });
});

/**
 * Builds a key ring. Throws naming the key (by its position and id, never its value) when the
 * ring is empty, an id is repeated or malformed, or a key is not 32 bytes of base64.
 */
export function createCredentialKeyRing(keys: readonly CredentialKey[]): CredentialKeyRing {
  if (keys.length === 0) throw new Error("credential key ring: at least one key is needed");
  const ring = new Map<string, Buffer>();
  keys.forEach((k, i) => {
    if (!ID_PATTERN.test(k.id)) throw new Error(`credential key ${i}: id must be ${ID_RULE}`);
    if (ring.has(k.id)) throw new Error(`credential key ${i}: id ${k.id} is used twice`);
    const bytes = z.string().base64().safeParse(k.key).success ? Buffer.from(k.key, "base64") : undefined;
    if (!bytes || bytes.length !== KEY_BYTES) throw new Error(`credential key ${i} (${k.id}): must be ${KEY_BYTES} bytes, base64`);
    ring.set(k.id, bytes);
  });
  const sealingKeyId = keys[0]!.id;
  const sealingKey = ring.get(sealingKeyId)!;

  return {
    sealingKeyId,
    seal(sessionId, backendId, credentials) {
      const headers = CredentialHeadersSchema.safeParse(credentials.headers);
      // The message names the header, never its value.
      if (!headers.success)
        throw new Error(
          `credentials for ${sessionId}/${backendId}: ${headers.error.issues.map((i) => `headers${i.path.map((p) => `[${JSON.stringify(String(p))}]`).join("")} ${i.message}`).join("; ")}`,
        );
      if (credentials.expiresAt !== undefined && !(Number.isSafeInteger(credentials.expiresAt) && credentials.expiresAt > 0)) {
        throw new Error(`credentials for ${sessionId}/${backendId}: expiresAt must be a time in ms since the epoch`);
      }
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", sealingKey, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(associatedData(sessionId, backendId, credentials.expiresAt));
      const data = Buffer.concat([cipher.update(JSON.stringify({ headers: credentials.headers }), "utf8"), cipher.final()]);
      return {
        v: 1,
        kid: sealingKeyId,
        iv: iv.toString("base64"),
        tag: cipher.getAuthTag().toString("base64"),
        data: data.toString("base64"),
        ...(credentials.expiresAt === undefined ? {} : { expiresAt: credentials.expiresAt }),
      };
    },
    open(sessionId, backendId, sealed) {
      const key = ring.get(sealed.kid);
      if (!key) return { ok: false, reason: "unknown_key", kid: sealed.kid };
      try {
        const iv = Buffer.from(sealed.iv, "base64");
        const tag = Buffer.from(sealed.tag, "base64");
        if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return { ok: false, reason: "undecryptable", kid: sealed.kid };
        const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(associatedData(sessionId, backendId, sealed.expiresAt));
        decipher.setAuthTag(tag);
        const plain = Buffer.concat([decipher.update(Buffer.from(sealed.data, "base64")), decipher.final()]).toString("utf8");
        // The plaintext `{"headers":{…}}`, checked as the seal checks it (another language may have sealed it).
        const parsed = JSON.parse(plain) as { headers?: unknown };
        if (typeof parsed !== "object" || parsed === null || Object.keys(parsed).length !== 1 || credentialHeaderProblems(parsed.headers).length > 0) {
          return { ok: false, reason: "undecryptable", kid: sealed.kid };
        }
        const headers = parsed.headers as Record<string, string>;
        return { ok: true, credentials: { headers, ...(sealed.expiresAt === undefined ? {} : { expiresAt: sealed.expiresAt }) } };
      } catch {
        // A wrong tag, wrong associated data or a corrupted ciphertext: the same answer, no detail
        // that could help an attacker, and never the plaintext.
        return { ok: false, reason: "undecryptable", kid: sealed.kid };
      }
    },
  };
}
