import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

/* `pnpm lint` enforces the formatter: a badly formatted file in the repository fails it. */
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const scratch = mkdtempSync(join(root, "test", ".format-check-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const prettierCheck = (file: string) => spawnSync("pnpm", ["exec", "prettier", "--check", file], { cwd: root, encoding: "utf8" });

describe("formatter", () => {
  it("the root lint script checks formatting before running eslint", () => {
    const scripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(scripts["lint"]).toMatch(/^prettier --check \. && /);
    expect(scripts["test"]).toContain("pnpm run lint");
  });

  it("rejects a badly formatted file and accepts it once formatted", () => {
    const file = join(scratch, "bad.ts");
    writeFileSync(file, "export   const x = {a:1,\n b : 2}\n");
    const bad = prettierCheck(file);
    expect(bad.status).not.toBe(0);
    expect(`${bad.stdout}${bad.stderr}`).toContain("bad.ts");
    writeFileSync(file, "export const x = { a: 1, b: 2 };\n");
    expect(prettierCheck(file).status).toBe(0);
  });
});
