import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ENV_OVERRIDES, parseConfig } from "../src/config/load.js";
import { ConfigFileSchema } from "../src/config/schema.js";

/*
 * docs/configuration.md is the reference of the config file and the zod schema is what the
 * programs accept: the keys, their defaults and the environment overrides must not drift apart.
 * The key list is read from the schema itself, so a key added there fails here until documented.
 */

const DOC = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs/configuration.md"), "utf8");

interface SchemaKey {
  /** As written in YAML: `keepalive.interval`, `backends[].keepalive_method`. */
  readonly path: string;
  /** The key's schema with its optional/default wrappers, so that parsing `undefined` gives its default. */
  readonly schema: z.ZodType;
  readonly required: boolean;
  readonly defaulted: boolean;
}

/** Strips `.optional()`, `.default()` and `.prefault()`, saying which were there. */
function unwrap(schema: z.ZodType): { inner: z.ZodType; optional: boolean; defaulted: boolean } {
  let inner = schema;
  let optional = false;
  let defaulted = false;
  for (;;) {
    if (inner instanceof z.ZodOptional) optional = true;
    else if (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault) defaulted = true;
    else return { inner, optional, defaulted };
    inner = inner.unwrap() as z.ZodType;
  }
}

/** Every leaf key an object schema accepts: sections and lists of objects are walked into. */
function schemaKeys(object: z.ZodObject, prefix = ""): SchemaKey[] {
  return Object.entries(object.shape).flatMap(([name, field]) => {
    const path = `${prefix}${name}`;
    const { inner, optional, defaulted } = unwrap(field as z.ZodType);
    if (inner instanceof z.ZodObject) return schemaKeys(inner, `${path}.`);
    if (inner instanceof z.ZodArray) {
      const element = unwrap(inner.element as z.ZodType).inner;
      if (element instanceof z.ZodObject) return schemaKeys(element, `${path}[].`);
    }
    return [{ path, schema: field as z.ZodType, required: !optional && !defaulted, defaulted }];
  });
}

/** Cells of a Markdown table row; `\|` inside a cell is not a separator. */
function cellsOf(line: string): string[] {
  return line
    .replace(/^\|/, "")
    .replace(/\|\s*$/, "")
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/** The body rows of every table in `markdown` whose header starts with the given column names. */
function tableRows(markdown: string, header: readonly string[]): string[][] {
  const rows: string[][] = [];
  let columns: string[] | undefined;
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) {
      columns = undefined;
      continue;
    }
    const cells = cellsOf(line);
    if (columns === undefined) columns = cells;
    else if (!cells.every((c) => /^:?-+:?$/.test(c)) && header.every((h, i) => columns![i] === h)) rows.push(cells);
  }
  return rows;
}

/** First `code span` of a cell. */
const codeOf = (cell: string | undefined) => /`([^`]+)`/.exec(cell ?? "")?.[1];

const KEYS = schemaKeys(ConfigFileSchema);
const keyRows = tableRows(DOC, ["key", "type", "default", "what it does"]);
const docKeys = new Map(keyRows.map((cells) => [codeOf(cells[0]) ?? cells[0]!, { type: cells[1]!, default: cells[2]!, what: cells[3]! }]));

describe("docs/configuration.md and the config schema", () => {
  it("the schema walk finds the keys of every section and of a backend", () => {
    const paths = KEYS.map((k) => k.path);
    expect(paths).toContain("redis.mode");
    expect(paths).toContain("keepalive.interval");
    expect(paths).toContain("backends[].keepalive_method");
    expect(paths).toContain("backends[].headers");
    expect(paths.some((p) => p === "redis" || p === "backends")).toBe(false);
    expect(keyRows.length).toBeGreaterThan(0);
  });

  it("documents every key the schema accepts", () => {
    const missing = KEYS.map((k) => k.path).filter((path) => !docKeys.has(path));
    expect(missing, "keys the schema accepts with no row in the doc's key tables").toEqual([]);
  });

  it("documents no key the schema does not accept", () => {
    const accepted = new Set(KEYS.map((k) => k.path));
    const unknown = [...docKeys.keys()].filter((path) => !accepted.has(path));
    expect(unknown, "rows of the doc's key tables that name no key of the schema").toEqual([]);
  });

  it("documents each key once, with a type and what it does", () => {
    const paths = keyRows.map((cells) => codeOf(cells[0]));
    expect(
      paths.filter((p, i) => paths.indexOf(p) !== i),
      "keys with more than one row",
    ).toEqual([]);
    for (const [path, row] of docKeys) {
      expect(row.type, `${path}: type`).not.toBe("");
      expect(row.what, `${path}: what it does`).not.toBe("");
    }
  });

  it("states each default as the schema has it, and required keys as required", () => {
    for (const key of KEYS) {
      const row = docKeys.get(key.path);
      if (!row) continue; // reported by "documents every key"
      if (key.required) {
        expect(row.default, `${key.path} has no default`).toBe("required");
        continue;
      }
      expect(row.default, `${key.path} is not required`).not.toBe("required");
      if (!key.defaulted) continue;
      // The doc's default, written as the file would write it, parses to the schema's default.
      const written = codeOf(row.default);
      expect(written, `${key.path}: the default cell gives the value as code`).toBeDefined();
      const parsed = key.schema.safeParse(parseYaml(written!));
      expect(parsed.success, `${key.path}: the doc's default ${written} is a valid value`).toBe(true);
      expect(parsed.data, `${key.path}: the doc's default ${written}`).toEqual(key.schema.parse(undefined));
    }
  });

  it("lists every environment override with the key it sets", () => {
    const documented = Object.fromEntries(tableRows(DOC, ["variable", "key"]).map((cells) => [codeOf(cells[0]), codeOf(cells[1])]));
    const honoured = Object.fromEntries(Object.entries(ENV_OVERRIDES).map(([name, path]) => [name, path.join(".")]));
    expect(documented).toEqual(honoured);
    for (const [name, path] of Object.entries(honoured)) expect(docKeys.get(path)?.default, `${path} names ${name}`).toContain(`env \`${name}\``);
  });

  it("its full example holds every key of the schema, but for those its text names as left out", () => {
    const section = /## A full example\n([\s\S]*?)```yaml\n([\s\S]*?)```/.exec(DOC);
    expect(section, "a section '## A full example' with a yaml block").not.toBeNull();
    const [, prose = "", yaml = ""] = section!;
    const all = schemaKeys(ConfigFileSchema).map((k) => k.path);
    // The keys the prose names (`lock.ttl`, `http.port`, …) are left out on purpose; each must be a key.
    const leftOut = [...prose.matchAll(/`([a-z_]+(?:\[\])?(?:\.[a-z_]+)+)`/g)].map((m) => m[1]!);
    expect(leftOut.filter((k) => !all.includes(k))).toEqual([]);
    const inExample = new Set<string>();
    const walk = (value: unknown, path: string) => {
      if (Array.isArray(value) && value.some((v) => typeof v === "object" && v !== null)) {
        for (const v of value) walk(v, `${path}[]`);
      } else if (typeof value === "object" && value !== null && !Array.isArray(value) && (path === "" || !all.includes(path))) {
        for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
      } else inExample.add(path);
    };
    walk(parseYaml(yaml), "");
    expect(all.filter((k) => !inExample.has(k) && !leftOut.includes(k)).sort(), "schema keys missing from the full example (add them, or name them as left out)").toEqual([]);
  });

  it("its YAML examples are valid configuration files", () => {
    const blocks = [...DOC.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      // Every variable the example interpolates without a default is set, long enough for a
      // password; a credentials key is 32 bytes of base64.
      const value = (name: string) => (name.includes("KEY") ? Buffer.alloc(32, 7).toString("base64") : "example-secret-value");
      const env = Object.fromEntries([...block.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => [m[1]!, value(m[1]!)]));
      expect(() => parseConfig(parseYaml(block), env, "docs/configuration.md"), block).not.toThrow();
    }
  });
});
