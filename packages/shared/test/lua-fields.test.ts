import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BACKEND_FIELDS, PAIR_FIELDS, SESSION_FIELDS } from "../src/index.js";

/*
 * The hash field names live in one place (PAIR_FIELDS, BACKEND_FIELDS, SESSION_FIELDS); the Lua
 * scripts of every package spell them as string literals. This keeps the two in step: every
 * field a script reads or writes is a declared field, and every declared field is used.
 */
const packages = fileURLToPath(new URL("../..", import.meta.url));
const luaDirs = ["shared/lua", "scheduler/lua", "scheduler/lua/includes", "worker/lua", "worker/lua/includes"].map((d) => join(packages, d));
const scripts = luaDirs.flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".lua"))
    .map((f) => ({ file: `${dir.slice(packages.length)}/${f}`, source: readFileSync(join(dir, f), "utf8") })),
);

/** The field names a script passes to a hash command (HSET/HMGET/HGET/HDEL/HINCRBY). */
function hashFields(source: string): string[] {
  const fields: string[] = [];
  for (const call of source.matchAll(/redis\.call\('(HSET|HMGET|HGET|HDEL|HINCRBY)',\s*[a-zA-Z0-9_[\]]+,([^)]*)\)/gs)) {
    const args = [...call[2]!.matchAll(/'([A-Za-z]+)'/g)].map((m) => m[1]!);
    // HSET/HINCRBY take field, value pairs; a quoted value is a status, not a field.
    const names = call[1] === "HSET" ? args.filter((_, i) => !/^[a-z]+:/.test(args[i]!)) : args;
    fields.push(...names);
  }
  return fields;
}

const VALUES = new Set(["active", "ended", "expired", "expiring", "closed", "open", "probing", "tool", "ping_failures", "method_not_found"]);
const declared = new Set<string>([...Object.values(PAIR_FIELDS), ...Object.values(BACKEND_FIELDS), ...Object.values(SESSION_FIELDS)]);

describe("Lua scripts and the declared hash fields", () => {
  it("finds the scripts of every package", () => {
    expect(scripts.map((s) => s.file)).toEqual(expect.arrayContaining(["shared/lua/reinitialize-pair-1.lua", "worker/lua/finish-tick-3.lua", "scheduler/lua/apply-registered-2.lua"]));
  });

  it("every field a script touches is declared in TypeScript", () => {
    for (const { file, source } of scripts) {
      const unknown = hashFields(source).filter((f) => !declared.has(f) && !VALUES.has(f));
      expect({ file, unknown }).toEqual({ file, unknown: [] });
    }
  });

  it("every declared field is used by some script", () => {
    const used = new Set(scripts.flatMap((s) => hashFields(s.source)));
    expect([...declared].filter((f) => !used.has(f))).toEqual([]);
  });
});
