import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createCredentialKeyRing } from "../src/credentials/credential-key-ring.js";
import { createCredentialSealer } from "../src/client/session-credentials.js";
import { createVmcpClient } from "../src/client/vmcp-client.js";
import { openSessionsQueue } from "./helpers/sessions-queue.js";

const k1 = { id: "k1", key: randomBytes(32).toString("base64") };
const token = (t: string) => ({ headers: { Authorization: `Bearer ${t}` }, expiresAt: 1_900_000_000_000 });

describe("the client's credential sealer", () => {
  it("sends the same credentials of a pair as the same envelope, and new credentials as a new one", () => {
    const sealer = createCredentialSealer([k1]);
    const first = sealer.seal("s1", "mail", token("a"));
    // A new object with the same content (what a vMCP builds per request) is the same envelope.
    expect(sealer.seal("s1", "mail", token("a"))).toBe(first);
    expect(sealer.registration("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "mail", backendSessionId: "x", credentials: token("a") }] }).backends[0]?.credentials).toBe(first);
    const renewed = sealer.seal("s1", "mail", token("b"));
    expect(renewed).not.toEqual(first);
    expect(sealer.seal("s1", "mail", { ...token("b"), expiresAt: 1_900_000_000_001 })).not.toEqual(renewed);
    // Per pair: another backend, or the session after it ended, is sealed afresh.
    expect(sealer.seal("s1", "files", token("a"))).not.toEqual(first);
    const beforeEnd = sealer.seal("s1", "mail", token("c"));
    sealer.forget("s1");
    expect(sealer.seal("s1", "mail", token("c"))).not.toEqual(beforeEnd);
    // Every envelope opens for its own pair.
    expect(createCredentialKeyRing([k1]).open("s1", "mail", renewed)).toMatchObject({ ok: true, credentials: { headers: { Authorization: "Bearer b" } } });
  });

  it("refuses credentials without a key ring, naming the pair", () => {
    expect(() => createCredentialSealer(undefined).seal("s1", "mail", token("a"))).toThrow("credentials for s1/mail: createVmcpClient needs credentialKeys to send session credentials");
    expect(createCredentialSealer(undefined).registration("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "mail" }] }).backends).toEqual([{ backendId: "mail" }]);
  });
});

describe("the client with session credentials", () => {
  it("a touch's credentials travel with it and with every later refresh; an update alone is its own message", async () => {
    const q = openSessionsQueue("client-creds");
    const client = createVmcpClient({ redisUrl: q.redisUrl, prefix: q.prefix, replicaId: "r1", credentialKeys: [k1], refreshIntervalMs: 300, touchIntervalMs: 60_000 });
    const ring = createCredentialKeyRing([k1]);
    type Sealed = Parameters<typeof ring.open>[2];
    const tokenOf = (sealed: unknown) => {
      const opened = ring.open("s1", "mail", sealed as Sealed);
      return opened.ok ? opened.credentials.headers["Authorization"] : opened.reason;
    };
    try {
      await client.registerSession("s1", { sessionTtlMs: 60_000, backends: [{ backendId: "mail", backendSessionId: "x", credentials: token("a") }] });
      client.touch("s1", { backendIds: ["mail"], credentials: { mail: token("b") } });
      expect((await client.updateCredentials("s1", "mail", token("c"))).ok).toBe(true);
      // Credentials without the ring, or with a header the worker sets, are refused at the call.
      expect(() => client.touch("s1", { credentials: { mail: { headers: { "Mcp-Session-Id": "other" } } } })).toThrow(/headers\["Mcp-Session-Id"\] is set by the worker itself/);
      await new Promise((r) => setTimeout(r, 800));
      const messages = (await q.messages("s1")) as unknown as { type: string; credentials?: unknown; backends?: { credentials?: unknown }[] }[];
      const [registered, touched, updated, ...refreshes] = messages;
      expect(tokenOf(registered?.backends?.[0]?.credentials)).toBe("Bearer a");
      expect(touched).toMatchObject({ type: "session.touched" });
      expect(tokenOf((touched?.credentials as Record<string, unknown>)["mail"])).toBe("Bearer b");
      expect(updated).toMatchObject({ type: "session.credentials_updated", backendId: "mail" });
      expect(tokenOf(updated?.credentials)).toBe("Bearer c");
      expect(refreshes.length).toBeGreaterThanOrEqual(1);
      for (const r of refreshes) expect(tokenOf(r.backends?.[0]?.credentials)).toBe("Bearer c");
      // The refreshes resend the one envelope of those credentials.
      expect(new Set(refreshes.map((r) => JSON.stringify(r.backends?.[0]?.credentials)))).toEqual(new Set([JSON.stringify(updated?.credentials)]));
    } finally {
      await client.close();
      await q.close();
    }
  });
});
