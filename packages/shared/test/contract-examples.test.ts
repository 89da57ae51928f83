import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { createCredentialKeyRing, SealedCredentialsSchema, type SealedCredentials } from "../src/credentials/credential-key-ring.js";
import { VmcpEventSchema } from "../src/events/vmcp-events.js";
import { contractExamples, SESSION_MESSAGE_EXAMPLES } from "../src/messages/contract-examples.js";
import { renderContractJson } from "../src/messages/json-schemas.js";
import { parseSessionMessage } from "../src/messages/parse.js";
import { SessionMessageSchema } from "../src/messages/schema.js";

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs");
const EXAMPLES = join(DOCS, "examples");

/** The key the example envelopes are sealed with: an example, in no deployment. */
const EXAMPLE_KEY = { id: "k1", key: "NMGfKJICTNYZpofUAwW5uVCC1KqbX72VQFIkdxhRWVg=" };

const messageTypes = SessionMessageSchema.options.map((o) => o.shape.type.value);
const eventTypes = VmcpEventSchema.options.map((o) => o.shape.type.value);
const onDisk = (file: string) => JSON.parse(readFileSync(join(EXAMPLES, file), "utf8")) as Record<string, unknown>;

/** The strict zod object of a message or event type. */
function schemaOf(type: string): z.ZodObject {
  const option = [...SessionMessageSchema.options, ...VmcpEventSchema.options].find((o) => o.shape.type.value === type);
  if (!option) throw new Error(`no schema for ${type}`);
  return option;
}

/** The fields of `schema` that `value` leaves out, at every depth (an empty array or record counts as leaving its element out). */
function missingFields(schema: z.ZodType, value: unknown, path: string): string[] {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault) return missingFields(schema.unwrap() as z.ZodType, value, path);
  if (schema instanceof z.ZodObject) {
    const object = value as Record<string, unknown>;
    return Object.entries(schema.shape).flatMap(([key, field]) => (key in object ? missingFields(field as z.ZodType, object[key], `${path}.${key}`) : [`${path}.${key}`]));
  }
  if (schema instanceof z.ZodArray) {
    const items = value as unknown[];
    return items.length === 0 ? [`${path}[]`] : items.flatMap((item, i) => missingFields(schema.element as z.ZodType, item, `${path}[${i}]`));
  }
  if (schema instanceof z.ZodRecord) {
    const entries = Object.entries(value as Record<string, unknown>);
    return entries.length === 0 ? [`${path}{}`] : entries.flatMap(([key, item]) => missingFields(schema.valueType as z.ZodType, item, `${path}.${key}`));
  }
  return [];
}

interface JsonSchema {
  readonly type?: string;
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly pattern?: string;
  readonly properties?: Record<string, JsonSchema>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | JsonSchema;
  readonly propertyNames?: JsonSchema;
  readonly items?: JsonSchema;
  readonly oneOf?: readonly JsonSchema[];
  readonly anyOf?: readonly JsonSchema[];
}

/**
 * What `value` breaks in `schema`, for the keywords the published files use to describe shape:
 * types, consts, enums, patterns, properties (required, additional), items and unions. Not a full
 * validator (no bounds, no formats): a light check that the files and the examples agree.
 */
function jsonSchemaProblems(schema: JsonSchema, value: unknown, path: string): string[] {
  const union = schema.oneOf ?? schema.anyOf;
  if (union) return union.some((branch) => jsonSchemaProblems(branch, value, path).length === 0) ? [] : [`${path}: matches no branch`];
  const problems: string[] = [];
  if ("const" in schema && value !== schema.const) problems.push(`${path}: is not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${path}: is not one of ${JSON.stringify(schema.enum)}`);
  const actual = Array.isArray(value) ? "array" : value === null ? "null" : Number.isInteger(value) ? "integer" : typeof value;
  if (schema.type && schema.type !== actual && !(schema.type === "number" && actual === "integer")) return [...problems, `${path}: is ${actual}, not ${schema.type}`];
  if (schema.pattern && typeof value === "string" && !new RegExp(schema.pattern).test(value)) problems.push(`${path}: does not match ${schema.pattern}`);
  if (schema.items && Array.isArray(value)) value.forEach((item, i) => problems.push(...jsonSchemaProblems(schema.items!, item, `${path}[${i}]`)));
  if (actual === "object") {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in object)) problems.push(`${path}.${key}: required`);
    for (const [key, item] of Object.entries(object)) {
      if (schema.propertyNames) problems.push(...jsonSchemaProblems(schema.propertyNames, key, `${path} key ${key}`));
      const field = schema.properties?.[key];
      if (field) problems.push(...jsonSchemaProblems(field, item, `${path}.${key}`));
      else if (schema.additionalProperties === false) problems.push(`${path}.${key}: not allowed`);
      else if (typeof schema.additionalProperties === "object") problems.push(...jsonSchemaProblems(schema.additionalProperties, item, `${path}.${key}`));
    }
  }
  return problems;
}

/** Every sealed envelope in an example, with where it is. */
function envelopes(example: object): { path: string; sealed: SealedCredentials }[] {
  const found: { path: string; sealed: SealedCredentials }[] = [];
  const walk = (value: unknown, path: string) => {
    if (typeof value !== "object" || value === null) return;
    const sealed = SealedCredentialsSchema.safeParse(value);
    if (sealed.success) found.push({ path, sealed: sealed.data });
    else for (const [key, item] of Object.entries(value)) walk(item, `${path}.${key}`);
  };
  walk(example, "");
  return found;
}

// Every client is tested against docs/examples/: one file per type, each using every field its type
// has, so a client that misses a type or a field fails its own test instead of a production call.
describe("contract examples (docs/examples)", () => {
  const examples = contractExamples();

  it("holds one file per message type and per event type, and no other file", () => {
    const expected = [...messageTypes, ...eventTypes].map((type) => `${type}.json`).sort();
    expect(Object.keys(examples).sort()).toEqual(expected);
    expect(readdirSync(EXAMPLES).sort()).toEqual(expected);
  });

  for (const [file, example] of Object.entries(examples)) {
    it(`docs/examples/${file} is what gen:schema writes (run \`pnpm --filter @vmcp-keepalive/shared gen:schema\` after changing the examples)`, () => {
      expect(readFileSync(join(EXAMPLES, file), "utf8")).toBe(renderContractJson(example));
    });
  }

  it("each file names its own type and is valid, unchanged, under that type's strict schema", () => {
    for (const file of readdirSync(EXAMPLES)) {
      const example = onDisk(file);
      expect(`${String(example["type"])}.json`).toBe(file);
      expect(schemaOf(String(example["type"])).parse(example), file).toEqual(example);
    }
  });

  it("each example sets every optional field its type has, at every depth", () => {
    for (const [file, example] of Object.entries(examples)) expect(missingFields(schemaOf(example.type), example, ""), file).toEqual([]);
  });

  it("each example names a type of the published JSON Schema and matches that type's branch of it", () => {
    for (const [schemaFile, types] of [
      ["session-messages.schema.json", messageTypes],
      ["vmcp-events.schema.json", eventTypes],
    ] as const) {
      const published = JSON.parse(readFileSync(join(DOCS, schemaFile), "utf8")) as JsonSchema;
      const branches = published.oneOf ?? published.anyOf ?? [];
      for (const type of types) {
        const branch = branches.find((b) => b.properties?.["type"]?.const === type);
        expect(branch, `${schemaFile} has a branch for ${type}`).toBeDefined();
        expect(jsonSchemaProblems(branch!, onDisk(`${type}.json`), type)).toEqual([]);
      }
      // The checker itself sees a field the file does not allow.
      expect(jsonSchemaProblems(published, { ...onDisk(`${types[0]}.json`), addedLater: 1 }, "m")).toEqual(["m: matches no branch"]);
    }
  });

  it("the sealed envelopes are real: the example key opens each for session s-1 and backend b1", () => {
    const ring = createCredentialKeyRing([EXAMPLE_KEY]);
    const opened = Object.values(SESSION_MESSAGE_EXAMPLES).flatMap((m) => envelopes(m).map(({ path, sealed }) => ({ where: `${m.type}${path}`, result: ring.open("s-1", "b1", sealed) })));
    expect(opened).toEqual([
      { where: "session.registered.backends.0.credentials", result: { ok: true, credentials: { headers: { Authorization: "Bearer example-token-a" }, expiresAt: 1796648400000 } } },
      { where: "session.touched.credentials.b1", result: { ok: true, credentials: { headers: { Authorization: "Bearer example-token-a" }, expiresAt: 1796648400000 } } },
      { where: "session.credentials_updated.credentials", result: { ok: true, credentials: { headers: { Authorization: "Bearer example-token-b" }, expiresAt: 1796652000000 } } },
    ]);
  });

  it("the schedulers apply every message example, and reject one with a field they do not know, naming the field", () => {
    for (const example of Object.values(SESSION_MESSAGE_EXAMPLES)) {
      expect(parseSessionMessage(JSON.stringify(example), 65_536)).toEqual({ ok: true, message: example });
      expect(parseSessionMessage({ ...example, addedLater: true }, 65_536)).toEqual({ ok: false, reason: "invalid_message", detail: "unknown field addedLater" });
    }
    const registered = SESSION_MESSAGE_EXAMPLES["session.registered"];
    const nested = { ...registered, backends: [{ ...registered.backends[0], addedLater: true }] };
    expect(parseSessionMessage(nested, 65_536)).toEqual({ ok: false, reason: "invalid_message", detail: "backends[0]: unknown field addedLater" });
  });
});
