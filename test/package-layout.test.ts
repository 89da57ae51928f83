import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/* The dependency rules of the code map (README): production packages never lean on the test kit or on each other sideways. */
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const manifest = (pkg: string) =>
  JSON.parse(readFileSync(join(root, "packages", pkg, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
    exports?: Record<string, unknown>;
  };
const deps = (pkg: string) => Object.keys(manifest(pkg).dependencies ?? {});

describe("package layout", () => {
  it("no production package depends on the test kit", () => {
    for (const pkg of ["shared", "runtime", "scheduler", "worker"]) expect(deps(pkg), pkg).not.toContain("@vmcp-keepalive/testkit");
  });

  it("shared, what a vMCP installs, depends on bullmq, ioredis, redlock and zod only", () => {
    expect(deps("shared").sort()).toEqual(["bullmq", "ioredis", "redlock", "zod"]);
  });

  it("scheduler and worker depend on shared and runtime, never on each other", () => {
    for (const [pkg, other] of [
      ["scheduler", "@vmcp-keepalive/worker"],
      ["worker", "@vmcp-keepalive/scheduler"],
    ] as const) {
      expect(deps(pkg)).toEqual(expect.arrayContaining(["@vmcp-keepalive/shared", "@vmcp-keepalive/runtime"]));
      expect(deps(pkg)).not.toContain(other);
    }
  });

  /*
   * What `import("@vmcp-keepalive/worker")` and `…/scheduler` give: what an operator or embedder
   * uses, as the README's code map lists it; the parts behind it (for this project's tests, bench
   * and demo) are on the `./internal` subpath.
   */
  const ENTRIES = { worker: ["createWorker"], scheduler: ["createScheduler"] } as const;
  const codeMapRow = (pkg: string) =>
    readFileSync(join(root, "README.md"), "utf8")
      .split("\n")
      .find((line) => line.startsWith(`| \`packages/${pkg}\``)) ?? "";

  it.each(Object.entries(ENTRIES))("the %s's entry point exports what the README's code map lists, no internals; those are on ./internal", async (pkg, names) => {
    const entry = (await import(`@vmcp-keepalive/${pkg}`)) as Record<string, unknown>;
    expect(Object.keys(entry).sort()).toEqual([...names].sort());
    for (const name of names) expect(codeMapRow(pkg)).toContain(`\`${name}\``);
    expect(codeMapRow(pkg)).toContain(`\`@vmcp-keepalive/${pkg}/internal\``);
    expect(Object.keys(manifest(pkg).exports ?? {})).toEqual([".", "./internal", "./package.json"]);
    const internal = (await import(`@vmcp-keepalive/${pkg}/internal`)) as Record<string, unknown>;
    expect(Object.keys(internal).length).toBeGreaterThan(0);
    expect(Object.keys(internal).filter((name) => name in entry)).toEqual([]);
  });
});
