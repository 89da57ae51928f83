/**
 * `pnpm bench:doc RUN.json [RUN.json …]` — writes the figures of full `pnpm bench` runs (their
 * `--out` JSON, bench-results/latest.json by default) into docs/benchmarks.figures.json and the
 * table between the markers of docs/benchmarks.md: latest (the last file given) and spread (all
 * of them). Give the runs in the order they ran.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { collectRuns, writeFiguresInto, type RunJson } from "./figures-doc.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const FIGURES_JSON = resolve(ROOT, "docs/benchmarks.figures.json");
export const BENCHMARKS_MD = resolve(ROOT, "docs/benchmarks.md");

function main(): void {
  const names = process.argv.slice(2);
  if (names.length === 0 || names.includes("--help")) {
    process.stderr.write("usage: pnpm bench:doc RUN.json [RUN.json …]   (the JSON of full runs, oldest first)\n");
    process.exit(2);
  }
  const runs = names.map((name) => {
    try {
      return { name, json: JSON.parse(readFileSync(name, "utf8")) as RunJson };
    } catch (err) {
      process.stderr.write(`bench:doc: ${name}: ${(err as Error).message}\n`);
      process.exit(2);
    }
  });
  let file;
  try {
    file = collectRuns(runs);
  } catch (err) {
    process.stderr.write(`bench:doc: ${(err as Error).message}\n`);
    process.exit(2);
  }
  writeFileSync(FIGURES_JSON, `${JSON.stringify(file, null, 2)}\n`);
  writeFileSync(BENCHMARKS_MD, writeFiguresInto(readFileSync(BENCHMARKS_MD, "utf8"), file));
  process.stdout.write(`wrote docs/benchmarks.figures.json and the table of docs/benchmarks.md from ${runs.length} run${runs.length === 1 ? "" : "s"}\n`);
}

main();
