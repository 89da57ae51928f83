import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/* The dependency rules of the code map (README): production packages never lean on the test kit or on each other sideways. */
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const manifest = (pkg: string) => JSON.parse(readFileSync(join(root, "packages", pkg, "package.json"), "utf8")) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
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
});
