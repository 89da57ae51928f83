import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { collectRuns, proseOf, rowCells, writeFiguresInto, type FiguresFile, type RunJson } from "../src/figures-doc.js";
import { FIGURE_KEYS } from "../src/report.js";

/*
 * docs/benchmarks.md's figures table is written by `pnpm bench:doc` from the runs' JSON, kept in
 * docs/benchmarks.figures.json: the table, the JSON and the bench's figure list agree, and the
 * page's prose restates no figure of the table.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DOC = readFileSync(resolve(ROOT, "docs/benchmarks.md"), "utf8");
const FILE = JSON.parse(readFileSync(resolve(ROOT, "docs/benchmarks.figures.json"), "utf8")) as FiguresFile;

const run = (figures: Record<string, number>, mode = "full"): RunJson => ({
  version: 1,
  mode,
  machine: { nproc: 2, cpuModel: "test", node: "v20", redis: "Redis server v=7.0.15 sha=0", platform: "linux x64", totalMemBytes: 2 ** 34 },
  figures: Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, { label: k, value: v, unit: "ms", goal: { op: "<=", value: 2 } }])),
});
const every = (value: number) => Object.fromEntries(FIGURE_KEYS.map((k) => [k, value]));

describe("docs/benchmarks.md's figures", () => {
  it("the JSON holds every figure the bench reports, in its order", () => {
    expect(FILE.figures.map((f) => f.key)).toEqual([...FIGURE_KEYS]);
    for (const f of FILE.figures) expect(f.values, f.key).toHaveLength(FILE.runs);
  });

  it("the table is what the JSON renders, unchanged by hand", () => {
    expect(writeFiguresInto(DOC, FILE)).toBe(DOC);
  });

  it("the prose restates no figure of the table", () => {
    const prose = proseOf(DOC);
    const restated = FILE.figures.flatMap((f) => {
      const [, latest, spread] = rowCells(f);
      return [latest, spread].filter((cell) => cell !== "" && /\d{3}|\d[.,]\d/.test(cell) && prose.includes(cell)).map((cell) => `${f.label}: ${cell}`);
    });
    expect(restated).toEqual([]);
  });

  it("renders latest and spread over the runs given, and how often a goal was met", () => {
    const file = collectRuns([
      { name: "a", json: run(every(1)) },
      { name: "b", json: run(every(3)) },
    ]);
    expect(rowCells(file.figures[0]!)).toEqual([FIGURE_KEYS[0], "3 ms", "1–3 ms", "≤ 2 ms", "met in 1 of 2"]);
  });

  it("refuses a run that is not a full one, or lacks a figure, naming it", () => {
    expect(() => collectRuns([{ name: "smoke.json", json: run(every(1), "smoke") }])).toThrow(/smoke\.json: not the JSON of a full run/);
    const partial = every(1);
    delete partial[FIGURE_KEYS[3]];
    expect(() => collectRuns([{ name: "old.json", json: run(partial) }])).toThrow(`old.json: no figure ${FIGURE_KEYS[3]}`);
  });
});
