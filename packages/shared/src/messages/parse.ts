import { describeIssues } from "../validation.js";
import { SessionMessageSchema, type SessionMessage } from "./schema.js";

/** Why a registration message was rejected. Closed set: it is the label set of the rejection counter. */
export const REJECTION_REASONS = ["invalid_json", "too_large", "invalid_message", "unknown_backend"] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export type ParseResult = { readonly ok: true; readonly message: SessionMessage } | { readonly ok: false; readonly reason: RejectionReason; readonly detail: string };

/** Deepest nesting a lifecycle message may have (a valid one has 4: message, backends, backend, field). */
export const MAX_NESTING = 32;

/** How deep `value` nests objects and arrays, counted without recursion; stops counting past `limit`. */
function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * Validates one raw job payload from `vmcp-sessions`. Accepts the message object itself or a
 * string holding its JSON (what producers without a BullMQ client tend to write).
 */
export function parseSessionMessage(payload: unknown, maxBytes: number): ParseResult {
  let value = payload;
  let size: number;
  // Before anything recursive (JSON.stringify, the schema) meets it: a foreign producer may nest
  // thousands of levels deep, which would overflow the stack instead of naming the problem.
  if (typeof payload !== "string" && nestingDepth(payload, MAX_NESTING) > MAX_NESTING) {
    return { ok: false, reason: "invalid_message", detail: `payload is nested deeper than ${MAX_NESTING} levels` };
  }
  if (typeof payload === "string") {
    size = Buffer.byteLength(payload);
    if (size > maxBytes) return { ok: false, reason: "too_large", detail: `payload is ${size} bytes, over the ${maxBytes}-byte limit` };
    try {
      value = JSON.parse(payload);
    } catch (err) {
      return { ok: false, reason: "invalid_json", detail: `payload is not valid JSON: ${(err as Error).message}` };
    }
    if (nestingDepth(value, MAX_NESTING) > MAX_NESTING) return { ok: false, reason: "invalid_message", detail: `payload is nested deeper than ${MAX_NESTING} levels` };
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
