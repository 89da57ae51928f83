import { describe, expect, it } from "vitest";
import { parseSessionMessage } from "../src/messages/parse.js";

const registered = {
  type: "session.registered",
  sessionId: "s-1",
  replicaId: "vmcp-a",
  occurredAt: "2026-11-23T10:00:00.000Z",
  sequence: 1,
  sessionTtlMs: 60_000,
  backends: [{ backendId: "pw", backendSessionId: "abc-123", protocolVersion: "2025-06-18" }],
};

describe("parseSessionMessage", () => {
  it("accepts the three message types, as objects or JSON strings", () => {
    expect(parseSessionMessage(registered, 65_536)).toMatchObject({ ok: true, message: { type: "session.registered", v: 1 } });
    expect(parseSessionMessage(JSON.stringify(registered), 65_536).ok).toBe(true);
    const touched = { type: "session.touched", sessionId: "s-1", occurredAt: "2026-11-23T10:00:01Z", sequence: 2 };
    expect(parseSessionMessage(touched, 65_536).ok).toBe(true);
    expect(parseSessionMessage({ ...touched, type: "session.ended", sequence: 3, reason: "closed" }, 65_536).ok).toBe(true);
  });

  it.each([
    ["missing field", { ...registered, replicaId: undefined }, "invalid_message", /replicaId: expected string \(missing\)/],
    ["mistyped field", { ...registered, sequence: "1" }, "invalid_message", /sequence: expected number, received string/],
    ["negative ttl", { ...registered, sessionTtlMs: -5 }, "invalid_message", /sessionTtlMs: Too small/],
    ["illegal id characters", { ...registered, sessionId: "s:1 {x}" }, "invalid_message", /sessionId: must be 1-128 characters/],
    ["illegal backend id", { ...registered, backends: [{ backendId: "../etc" }] }, "invalid_message", /backends\[0\]\.backendId: must be/],
    ["header injection in a session id", { ...registered, backends: [{ backendId: "pw", backendSessionId: "a\r\nX: y" }] }, "invalid_message", /backendSessionId: must be 1-512 visible ASCII/],
    ["unknown field", { ...registered, url: "http://evil" }, "invalid_message", /unknown field url/],
    ["unknown type", { ...registered, type: "session.hijacked" }, "invalid_message", /type: /],
    ["not an object", [1, 2], "invalid_message", /must be a JSON object/],
    ["non-JSON string", "{not json", "invalid_json", /payload is not valid JSON/],
    ["duplicate backends", { ...registered, backends: [{ backendId: "pw" }, { backendId: "pw" }] }, "invalid_message", /backendId values must be unique/],
    ["bad timestamp", { ...registered, occurredAt: "yesterday" }, "invalid_message", /occurredAt: /],
  ])("rejects %s with a reason naming the problem", (_name, payload, reason, detail) => {
    const result = parseSessionMessage(payload, 65_536);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe(reason);
    expect(result.detail).toMatch(detail);
  });

  it("rejects payloads over the size limit before parsing them", () => {
    const big = { ...registered, backends: Array.from({ length: 10 }, (_, i) => ({ backendId: `b${i}`, backendSessionId: "x".repeat(300) })) };
    const result = parseSessionMessage(big, 1_024);
    expect(result).toEqual({ ok: false, reason: "too_large", detail: expect.stringMatching(/^payload is \d+ bytes, over the 1024-byte limit$/) });
    expect(parseSessionMessage("x".repeat(2_000), 1_024)).toMatchObject({ ok: false, reason: "too_large" });
  });
});
