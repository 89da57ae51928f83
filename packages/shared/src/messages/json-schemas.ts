import { vmcpEventJsonSchema } from "../events/vmcp-events.js";
import { sessionMessageJsonSchema } from "./schema.js";

/**
 * The JSON Schema files published in docs/ for vMCPs written in other languages, by file name.
 * `pnpm --filter @vmcp-keepalive/shared gen:schema` writes them; a test fails when a file differs
 * from what the zod schemas generate, so the two cannot drift.
 */
export function contractJsonSchemas(): Record<string, Record<string, unknown>> {
  return {
    "session-messages.schema.json": {
      ...sessionMessageJsonSchema(),
      $id: "https://vmcp-keepalive/contract/v1/session-messages.schema.json",
      title: "vmcp-sessions lifecycle message (contract v1)",
    },
    "vmcp-events.schema.json": {
      ...vmcpEventJsonSchema(),
      $id: "https://vmcp-keepalive/contract/v1/vmcp-events.schema.json",
      title: "vmcp-events event (contract v1)",
    },
  };
}

/** The exact text of each file gen:schema writes (the JSON Schemas and docs/examples/): 2-space JSON and a final newline. */
export function renderContractJson(value: object): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
