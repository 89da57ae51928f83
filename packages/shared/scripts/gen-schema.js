#!/usr/bin/env node
// Writes docs/*.schema.json from the zod schemas and docs/examples/<type>.json from the contract
// examples, removing the example of a type that no longer exists (run after `pnpm build`):
//   pnpm --filter @vmcp-keepalive/shared gen:schema
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { contractExamples, contractJsonSchemas, renderContractJson } from "../dist/index.js";

const docs = resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs");
for (const [file, schema] of Object.entries(contractJsonSchemas())) {
  writeFileSync(join(docs, file), renderContractJson(schema));
  console.log(`wrote docs/${file}`);
}

const examplesDir = join(docs, "examples");
const examples = contractExamples();
mkdirSync(examplesDir, { recursive: true });
for (const file of readdirSync(examplesDir)) {
  if (file.endsWith(".json") && !(file in examples)) {
    rmSync(join(examplesDir, file));
    console.log(`removed docs/examples/${file}`);
  }
}
for (const [file, example] of Object.entries(examples)) {
  writeFileSync(join(examplesDir, file), renderContractJson(example));
  console.log(`wrote docs/examples/${file}`);
}
