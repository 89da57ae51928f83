import { createCipheriv, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createCredentialKeyRing, SealedCredentialsSchema, type SealedCredentials } from "../src/credentials/credential-key-ring.js";

const k1 = { id: "k1", key: randomBytes(32).toString("base64") };
const k2 = { id: "k2", key: randomBytes(32).toString("base64") };
const TOKEN = "Bearer planted-token-7f3a9c";

describe("credential key ring", () => {
  it("seals a pair's headers so that only the ring opens them, and the envelope holds no plaintext", () => {
    const ring = createCredentialKeyRing([k1]);
    const sealed = ring.seal("s1", "b1", { headers: { Authorization: TOKEN }, expiresAt: 1_900_000_000_000 });
    expect(SealedCredentialsSchema.parse(sealed)).toEqual(sealed);
    expect(sealed).toMatchObject({ v: 1, kid: "k1", expiresAt: 1_900_000_000_000 });
    expect(JSON.stringify(sealed)).not.toContain("planted-token");
    expect(ring.open("s1", "b1", sealed)).toEqual({ ok: true, credentials: { headers: { Authorization: TOKEN }, expiresAt: 1_900_000_000_000 } });
  });

  it("seals with the first key and opens with every key, so keys rotate without downtime", () => {
    const old = createCredentialKeyRing([k1]);
    const rotating = createCredentialKeyRing([k2, k1]);
    const sealedByOld = old.seal("s1", "b1", { headers: { Authorization: TOKEN } });
    expect(rotating.open("s1", "b1", sealedByOld)).toMatchObject({ ok: true });
    const sealedByNew = rotating.seal("s1", "b1", { headers: { Authorization: TOKEN } });
    expect(sealedByNew.kid).toBe("k2");
    expect(old.open("s1", "b1", sealedByNew)).toEqual({ ok: false, reason: "unknown_key", kid: "k2" });
  });

  it("refuses a ciphertext moved onto another pair, given another expiry, or altered", () => {
    const ring = createCredentialKeyRing([k1]);
    const sealed = ring.seal("s1", "b1", { headers: { Authorization: TOKEN }, expiresAt: 1_900_000_000_000 });
    const refused = { ok: false, reason: "undecryptable", kid: "k1" };
    expect(ring.open("s2", "b1", sealed)).toEqual(refused);
    expect(ring.open("s1", "b2", sealed)).toEqual(refused);
    expect(ring.open("s1", "b1", { ...sealed, expiresAt: 1_900_000_000_001 })).toEqual(refused);
    const { expiresAt: _dropped, ...withoutExpiry } = sealed;
    expect(ring.open("s1", "b1", withoutExpiry)).toEqual(refused);
    const data = Buffer.from(sealed.data, "base64");
    data[0] = data[0]! ^ 1;
    expect(ring.open("s1", "b1", { ...sealed, data: data.toString("base64") })).toEqual(refused);
    expect(ring.open("s1", "b1", { ...sealed, tag: randomBytes(16).toString("base64") })).toEqual(refused);
  });

  it("opens an envelope built by hand from the documented format (what another language produces)", () => {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", Buffer.from(k1.key, "base64"), iv);
    cipher.setAAD(Buffer.from("vmk-credentials:1:sess-9:backend.a:1900000000000", "utf8"));
    const data = Buffer.concat([cipher.update(JSON.stringify({ headers: { Authorization: TOKEN, "X-Tenant": "t1" } }), "utf8"), cipher.final()]);
    const sealed: SealedCredentials = {
      v: 1,
      kid: "k1",
      iv: iv.toString("base64"),
      tag: cipher.getAuthTag().toString("base64"),
      data: data.toString("base64"),
      expiresAt: 1_900_000_000_000,
    };
    expect(createCredentialKeyRing([k1]).open("sess-9", "backend.a", sealed)).toEqual({
      ok: true,
      credentials: { headers: { Authorization: TOKEN, "X-Tenant": "t1" }, expiresAt: 1_900_000_000_000 },
    });
  });

  it("rejects a bad ring naming the key by position and id, never by its value", () => {
    expect(() => createCredentialKeyRing([])).toThrow(/at least one key/);
    expect(() => createCredentialKeyRing([k1, { ...k2, id: "k1" }])).toThrow(/credential key 1: id k1 is used twice/);
    const short = { id: "k3", key: randomBytes(16).toString("base64") };
    let message = "";
    try {
      createCredentialKeyRing([short]);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe("credential key 0 (k3): must be 32 bytes, base64");
    expect(message).not.toContain(short.key);
    expect(() => createCredentialKeyRing([{ id: "bad:id", key: k1.key }])).toThrow(/credential key 0: id must be/);
  });

  it("accepts only the envelope's own fields", () => {
    const sealed = createCredentialKeyRing([k1]).seal("s1", "b1", { headers: { Authorization: TOKEN } });
    expect(SealedCredentialsSchema.safeParse({ ...sealed, headers: { Authorization: TOKEN } }).success).toBe(false);
    expect(SealedCredentialsSchema.safeParse({ ...sealed, v: 2 }).success).toBe(false);
  });

  it("seals only headers a call may carry, and names the header, never its value, when it refuses", () => {
    const ring = createCredentialKeyRing([k1]);
    const refusal = (headers: Record<string, string>) => {
      try {
        ring.seal("s1", "b1", { headers });
      } catch (err) {
        return (err as Error).message;
      }
      return "sealed";
    };
    expect(refusal({ "Mcp-Session-Id": "other-session" })).toMatch(/headers\["Mcp-Session-Id"\] is set by the worker itself/);
    const injected = refusal({ Authorization: `${TOKEN}\r\nX-Evil: 1` });
    expect(injected).toMatch(/headers\["Authorization"\] must be at most 8192 characters of visible ASCII/);
    expect(injected).not.toContain("planted-token");
    expect(refusal({ "bad header": "x" })).toMatch(/must be an HTTP header name/);
    expect(refusal({})).toMatch(/must hold 1 to 32 headers/);
    expect(() => ring.seal("s1", "b1", { headers: { Authorization: TOKEN }, expiresAt: 1.5 })).toThrow(/expiresAt must be a time in ms/);
  });
});
