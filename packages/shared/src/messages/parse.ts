import { describeIssues } from "../validation.js";
import { SessionMessageSchema, type SessionMessage } from "./schema.js";

/** Why a registration message was rejected. Closed set: it is the label set of the rejection counter. */
export const REJECTION_REASONS = ["invalid_json", "too_large", "invalid_message", "unknown_backend"] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export type ParseResult = { readonly ok: true; readonly message: SessionMessage } | { readonly ok: false; readonly reason: RejectionReason; readonly detail: string };

/**
 * Validates one raw job payload from `vmcp-sessions`. Accepts the message object itself or a
 * string holding its JSON (what producers without a BullMQ client tend to write).
 */
export function parseSessionMessage(payload: unknown, maxBytes: number): ParseResult {
  let value = payload;
  let size: number;
  if (typeof payload === "string") {
    size = Buffer.byteLength(payload);
    if (size > maxBytes) return { ok: false, reason: "too_large", detail: `payload is ${size} bytes, over the ${maxBytes}-byte limit` };
    try {
      value = JSON.parse(payload);
    } catch (err) {
      return { ok: false, reason: "invalid_json", detail: `payload is not valid JSON: ${(err as Error).message}` };
    }
  } else {
    size = Buffer.byteLength(JSON.stringify(payload) ?? "");
    if (size > maxBytes) return { ok: false, reason: "too_large", detail: `payload is ${size} bytes, over the ${maxBytes}-byte limit` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { ok: false, reason: "invalid_message", detail: "payload must be a JSON object with a type field" };
  }
  const result = SessionMessageSchema.safeParse(value);
  if (!result.success) return { ok: false, reason: "invalid_message", detail: describeIssues(result.error.issues.slice(0, 5), { noun: "field", root: "message" }).join("; ") };
  return { ok: true, message: result.data };
}
