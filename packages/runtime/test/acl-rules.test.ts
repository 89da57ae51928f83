import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createKeys, keyLayout } from "@vmcp-keepalive/shared";
import { aclRules, aclUserLine, ACL_ROLES, CLUSTER_COMMANDS, type AclRole } from "../src/index.js";

const rulesOf = (mode: "standalone" | "sentinel" | "cluster", role: AclRole, shards?: number) => aclRules(createKeys("vmk", keyLayout(mode === "cluster", shards)), mode).find((r) => r.role === role)!;

describe("Redis ACL rules", () => {
  it("are made of the key layout's patterns: untagged on one node, `{*}` for the shard tag when sharded", () => {
    expect(rulesOf("standalone", "vmcp").keys.map((k) => k.pattern)).toEqual([
      "vmk:vmcp-sessions:*",
      "vmk:session-messages",
      "vmk:vmcp-events:*",
      "vmk:session-events",
      "vmk:lock:*:*",
      "vmk:pair:*:*",
    ]);
    expect(rulesOf("cluster", "worker").keys.map((k) => k.pattern)).toEqual([
      "vmk:{*}:keepalive-*:*",
      "vmk:{events}:vmcp-events:*",
      "vmk:{events}:session-events",
      "vmk:{*}:pair:*:*",
      "vmk:{*}:lock:*:*",
      "vmk:backend:{*}",
    ]);
    expect(rulesOf("standalone", "operator", 4).keys.map((k) => k.pattern)).toContain("vmk:{*}:keepalive-*:wait");
  });

  it("add the Cluster client's commands on a Cluster, and ROLE for the vmcp user with Sentinel", () => {
    for (const role of ACL_ROLES) {
      expect(rulesOf("cluster", role).commands).toEqual(expect.arrayContaining([...CLUSTER_COMMANDS]));
      expect(rulesOf("standalone", role).commands.filter((c) => c.startsWith("cluster") || c === "role")).toEqual([]);
      expect(rulesOf("sentinel", role).commands.includes("role")).toBe(role === "vmcp");
    }
  });

  it("write one ACL file line per role with the password's SHA-256 only", () => {
    const line = aclUserLine(rulesOf("standalone", "operator"), "a-password-of-the-operator");
    const sha = createHash("sha256").update("a-password-of-the-operator").digest("hex");
    expect(line).toBe(
      `user operator on #${sha} resetchannels %R~vmk:pair:*:* %R~vmk:keepalive:wait %R~vmk:session-messages:rejected -@all +info +client|setname +ping +select +scan +hgetall +llen +xrange +xrevrange`,
    );
  });
});
