import { FIGURE_KEYS, type Goal } from "./report.js";
import { round } from "./measure/stats.js";

/**
 * The figures table of docs/benchmarks.md, written from the JSON of full `pnpm bench` runs and
 * nowhere else: the table lives between {@link BEGIN} and {@link END}, the figures it was made
 * from in docs/benchmarks.figures.json, and a test holds the two together. The prose explains
 * method and limits and restates no figure.
 */
export const BEGIN = "<!-- figures: written by `pnpm bench:doc`, do not edit -->";
export const END = "<!-- figures end -->";

/** What one run's JSON gives (bench-results/latest.json). */
export interface RunJson {
  readonly version: number;
  readonly mode: string;
  readonly machine: Readonly<Record<string, unknown>>;
  readonly figures: Readonly<Record<string, { readonly label: string; readonly value: number; readonly unit: string; readonly goal: Goal | null }>>;
}

/** The figures of several runs, per figure key, in table order (docs/benchmarks.figures.json). */
export interface FiguresFile {
  readonly version: 1;
  /** The machine of the last run. */
  readonly machine: Readonly<Record<string, unknown>>;
  readonly runs: number;
  readonly figures: ReadonlyArray<{ readonly key: string; readonly label: string; readonly unit: string; readonly goal: Goal | null; readonly values: readonly number[] }>;
}

/** Collects full runs into the figures file; throws naming a run that is not a full run or lacks a figure. */
export function collectRuns(runs: ReadonlyArray<{ readonly name: string; readonly json: RunJson }>): FiguresFile {
  if (runs.length === 0) throw new Error("give the JSON of at least one full run (bench-results/latest.json)");
  for (const { name, json } of runs) {
    if (json.version !== 1 || json.mode !== "full") throw new Error(`${name}: not the JSON of a full run (mode ${JSON.stringify(json.mode)})`);
    const missing = FIGURE_KEYS.filter((k) => !Number.isFinite(json.figures[k]?.value));
    if (missing.length > 0) throw new Error(`${name}: no figure ${missing.join(", ")} (a run of an older bench?)`);
  }
  const last = runs[runs.length - 1]!.json;
  return {
    version: 1,
    machine: last.machine,
    runs: runs.length,
    figures: FIGURE_KEYS.map((key) => {
      const f = last.figures[key]!;
      return { key, label: f.label, unit: f.unit, goal: f.goal, values: runs.map((r) => r.json.figures[key]!.value) };
    }),
  };
}

function num(v: number): string {
  const abs = Math.abs(v);
  const r = abs >= 1000 ? Math.round(v) : abs >= 10 ? round(v, 1) : round(v, 3);
  return r.toLocaleString("en-US");
}

const withUnit = (text: string, unit: string) => (unit ? `${text} ${unit}` : text);

/** The cells of one figure's row: label, latest, spread, goal, how often met. */
export function rowCells(f: FiguresFile["figures"][number]): [string, string, string, string, string] {
  const latest = f.values[f.values.length - 1]!;
  const low = Math.min(...f.values);
  const high = Math.max(...f.values);
  const spread = f.values.length === 1 ? "" : low === high ? withUnit(num(low), f.unit) : withUnit(`${num(low)}–${num(high)}`, f.unit);
  const goal = f.goal ? `${f.goal.op === ">=" ? "≥" : "≤"} ${withUnit(num(f.goal.value), f.unit)}` : "";
  let met = "";
  if (f.goal) {
    const ok = f.values.filter((v) => (f.goal!.op === ">=" ? v >= f.goal!.value : v <= f.goal!.value)).length;
    met = ok === f.values.length ? "met" : ok === 0 ? "**missed**" : `met in ${ok} of ${f.values.length}`;
  }
  return [f.label, withUnit(num(latest), f.unit), spread, goal, met];
}

/** The Markdown between the markers: the machine, then the table. */
export function renderFigures(file: FiguresFile): string {
  const m = file.machine;
  const gib = typeof m["totalMemBytes"] === "number" ? `${round(m["totalMemBytes"] / 2 ** 30, 1)} GiB` : "";
  const redis = /v=(\S+)/.exec(String(m["redis"] ?? ""))?.[1];
  const machine = [`${String(m["nproc"] ?? "?")} cores (${String(m["cpuModel"] ?? "?").trim()})`, gib, `Node ${String(m["node"] ?? "?")}`, redis ? `Redis ${redis}` : "", String(m["platform"] ?? "")]
    .filter(Boolean)
    .join(", ");
  const spreadHead = file.runs === 1 ? "spread (1 run)" : `spread (${file.runs} runs)`;
  const lines = [
    file.runs === 1
      ? `Machine: ${machine}. One full run: "latest" is its figure; run more and give them all for a spread.`
      : `Machine of the last run: ${machine}. "Latest" is the last of ${file.runs} full runs, "spread" the lowest and highest of them.`,
    "",
    `| figure | latest | ${spreadHead} | goal | |`,
    "| --- | ---: | ---: | --- | --- |",
    ...file.figures.map((f) => `| ${rowCells(f).join(" | ")} |`),
  ];
  return lines.join("\n");
}

/** The document with the section between the markers replaced; throws when the markers are missing. */
export function writeFiguresInto(doc: string, file: FiguresFile): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin === -1 || end === -1 || end < begin) throw new Error(`docs/benchmarks.md: no "${BEGIN}" … "${END}" section`);
  return `${doc.slice(0, begin + BEGIN.length)}\n\n${renderFigures(file)}\n\n${doc.slice(end)}`;
}

/** The document without the generated section: what must restate no figure. */
export function proseOf(doc: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  return begin === -1 || end === -1 ? doc : doc.slice(0, begin) + doc.slice(end + END.length);
}
