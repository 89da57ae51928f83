import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createCredentialKeyRing, decodePair } from "@vmcp-keepalive/shared";
import { openPairCredentials } from "../src/internal.js";

/* What a worker makes of a pair's stored credentials: pure, no Redis (the e2e suites cover the rest). */
const k1 = { id: "k1", key: randomBytes(32).toString("base64") };
const ring = createCredentialKeyRing([k1]);
const pairWith = (cred: string | undefined, sessionId = "s1") => decodePair({ epoch: "1", bsid: "b", ...(cred === undefined ? {} : { cred, credSeq: "7" }) }, sessionId, "mail")!;
const sealed = JSON.stringify(ring.seal("s1", "mail", { headers: { Authorization: "Bearer t" } }));

describe("opening a pair's session credentials", () => {
  it("gives the headers of credentials sealed for this pair", () => {
    expect(openPairCredentials(ring, pairWith(sealed))).toEqual({ headers: { Authorization: "Bearer t" } });
  });

  it("says why not, with the stop fenced on the credentials it read", () => {
    const stop = { off: "credentials_undecryptable", credSeq: 7 };
    expect(openPairCredentials(ring, pairWith(undefined))).toEqual({ stop: { off: "no_credentials", credSeq: -1 }, why: "none" });
    expect(openPairCredentials(ring, pairWith(sealed, "s2"))).toEqual({ stop, why: "undecryptable" });
    expect(openPairCredentials(undefined, pairWith(sealed))).toEqual({ stop, why: "no_key_ring" });
    expect(openPairCredentials(ring, pairWith("not json"))).toEqual({ stop, why: "malformed" });
    expect(openPairCredentials(ring, pairWith(JSON.stringify({ ...JSON.parse(sealed), v: 2 })))).toEqual({ stop, why: "malformed" });
  });

  it("waits, without a stop, for credentials sealed with a key this worker's ring lacks (a rotation under way)", () => {
    expect(openPairCredentials(createCredentialKeyRing([{ id: "k2", key: k1.key }]), pairWith(sealed))).toEqual({ wait: "credentials_unknown_key", keyId: "k1" });
  });
});
