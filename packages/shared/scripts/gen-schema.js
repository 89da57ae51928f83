#!/usr/bin/env node
// Writes docs/*.schema.json from the zod schemas (run after `pnpm build`):
//   pnpm --filter @vmcp-keepalive/shared gen:schema
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { contractJsonSchemas, renderJsonSchema } from "../dist/index.js";

const docs = resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs");
for (const [file, schema] of Object.entries(contractJsonSchemas())) {
  writeFileSync(join(docs, file), renderJsonSchema(schema));
  console.log(`wrote docs/${file}`);
}
