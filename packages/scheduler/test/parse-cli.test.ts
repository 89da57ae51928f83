import { describe, expect, it } from "vitest";
import { parseCli } from "../src/cli/parse-cli.js";

describe("admin CLI arguments", () => {
  it("parses register with several backends, a stateless one, protocol version and TTL", () => {
    expect(parseCli(["register", "--session", "s1", "--backend", "pw=abc", "--backend", "search", "--protocol-version", "2025-06-18", "--ttl", "10m", "--config", "c.yaml"])).toEqual({
      command: "register",
      config: "c.yaml",
      sessionId: "s1",
      backends: [
        { backendId: "pw", backendSessionId: "abc" },
        { backendId: "search", backendSessionId: undefined },
      ],
      protocolVersion: "2025-06-18",
      ttlMs: 600_000,
      maxLifetimeMs: undefined,
    });
    expect(parseCli(["status", "--json"])).toEqual({ command: "status", config: undefined, json: true });
    expect(parseCli(["end", "--session", "s1"])).toEqual({ command: "end", config: undefined, sessionId: "s1" });
    expect(parseCli(["acl", "--config", "c.yaml"])).toEqual({ command: "acl", config: "c.yaml" });
  });

  it.each([
    [["frobnicate"], /unknown command "frobnicate"/],
    [["register", "--backend", "pw=1"], /register: --session ID is required/],
    [["register", "--session", "s1"], /at least one --backend/],
    [["register", "--session", "bad id", "--backend", "pw=1"], /--session "bad id" is invalid/],
    [["register", "--session", "s1", "--backend", "p:w=1"], /--backend id "p:w" is invalid/],
    [["register", "--session", "s1", "--backend", "pw=a b"], /visible ASCII/],
    [["register", "--session", "s1", "--backend", "pw=1", "--ttl", "soon"], /--ttl "soon" is not a duration/],
    [["register", "--session", "s1", "--backend", "pw=1", "--protocol-version", "v2"], /--protocol-version "v2"/],
    [["status", "--session", "s1"], /status: option --session does not apply/],
    [["acl", "--json"], /acl: option --json does not apply/],
    [["end", "--sesion", "s1"], /end: Unknown option '--sesion'/],
  ])("rejects %j with a message naming the argument", (argv, message) => {
    expect(() => parseCli(argv)).toThrow(message);
  });
});
