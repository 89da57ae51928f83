import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { contractJsonSchemas, renderContractJson } from "../src/messages/json-schemas.js";
import { SessionMessageSchema } from "../src/messages/schema.js";
import { VmcpEventSchema } from "../src/events/vmcp-events.js";

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs");

// vMCPs in other languages validate against the JSON Schema files in docs/: they must be exactly
// what the zod schemas generate, or the two contracts drift apart.
describe("published JSON Schemas", () => {
  const schemas = contractJsonSchemas();

  it("covers the messages and the events", () => {
    expect(Object.keys(schemas).sort()).toEqual(["session-messages.schema.json", "vmcp-events.schema.json"]);
  });

  for (const [file, schema] of Object.entries(schemas)) {
    it(`docs/${file} equals the schema generated from zod (run \`pnpm --filter @vmcp-keepalive/shared gen:schema\` after changing it)`, () => {
      const onDisk = readFileSync(join(DOCS, file), "utf8");
      expect(JSON.parse(onDisk)).toEqual(schema);
      expect(onDisk).toBe(renderContractJson(schema));
    });
  }

  it("lists every message type and every event type the zod unions accept", () => {
    const types = (s: Record<string, unknown>) => ((s["oneOf"] ?? s["anyOf"]) as { properties: { type: { const: string } } }[]).map((o) => o.properties.type.const).sort();
    expect(types(schemas["session-messages.schema.json"]!)).toEqual(SessionMessageSchema.options.map((o) => o.shape.type.value).sort());
    expect(types(schemas["vmcp-events.schema.json"]!)).toEqual(VmcpEventSchema.options.map((o) => o.shape.type.value).sort());
  });
});
