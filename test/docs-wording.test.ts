import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/*
 * Code, tests and docs say what is and why; the history of how it got there (work-item numbers,
 * runs, earlier figures) belongs in commit messages. This holds the wording of every tracked text
 * file to that.
 */
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const TEXT = /\.(ts|js|lua|md|ya?ml|sh|json)$|(^|\/)(Dockerfile|run)$/;
const SKIP = /(^|\/)(pnpm-lock\.yaml|package\.json)$|\.schema\.json$/;

const HISTORY: readonly [string, RegExp][] = [
  ["an issue number", /\bissue\s+#?\d+/i],
  ["an acceptance number", /\bacceptance\s+(item\s+)?\d+/i],
  ["a numbered item of a work item", /\bitem\s+\d+\s+of\b/i],
  ["runs named by letter", /\bruns?\s+[A-C](\s*[–-]\s*[A-C])?\b(?!\w)/],
  ["a stop of the work", /\b(this|previous|earlier|last)\s+stop\b/i],
  ["the previous runs", /\bprevious\s+(run|runs|measurement|figures)\b/i],
  ["numbered changes", /\bchanges?\s+\d+\s*[–-]\s*\d+/i],
];

function trackedTextFiles(): string[] {
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" }).split("\n");
  return files.filter((f) => f && TEXT.test(f) && !SKIP.test(f));
}

describe("wording of code, tests and docs", () => {
  it("names no work item, acceptance number or run of the past", () => {
    const found: string[] = [];
    const self = "test/docs-wording.test.ts";
    for (const file of trackedTextFiles()) {
      if (file === self) continue;
      let text: string;
      try {
        text = readFileSync(join(root, file), "utf8");
      } catch {
        continue; // deleted in the working tree
      }
      text.split("\n").forEach((line, i) => {
        for (const [what, pattern] of HISTORY) if (pattern.test(line)) found.push(`${file}:${i + 1} (${what}): ${line.trim().slice(0, 120)}`);
      });
    }
    expect(found).toEqual([]);
  });

  it("catches the wording it is meant to catch", () => {
    const hits = (line: string) => HISTORY.filter(([, p]) => p.test(line)).map(([w]) => w);
    // The examples are assembled from their parts, so that this file does not itself carry them.
    const n = 3;
    const work = ["issue", "acceptance", "stop"];
    expect(hits(`// ${work[1]} ${n + 1} (${work[0]} ${n}): the breaker`)).toEqual(["an issue number", "an acceptance number"]);
    expect(hits(`measured in runs ${"A–C"} of the previous ${work[2]}`)).toEqual(["runs named by letter", "a stop of the work"]);
    expect(hits(`changes ${n + 5}–${n + 7} moved the figure`)).toEqual(["numbered changes"]);
    expect(hits("a lock is released by compare-and-delete")).toEqual([]);
  });
});
