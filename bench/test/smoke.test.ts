import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FIGURE_KEYS } from "../src/report.js";

const RUN = resolve(dirname(fileURLToPath(import.meta.url)), "../dist/run.js");
const dir = mkdtempSync(join(tmpdir(), "vmk-bench-smoke-"));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface BenchJson {
  mode: string;
  machine: Record<string, unknown>;
  figures: Record<string, { value: number; goal: unknown; met: unknown; label: string }>;
  details: Record<string, unknown>;
}

/**
 * Runs the real benchmark in smoke mode (tiny sizes: real redis-server, real SDK backend, the
 * real worker and scheduler programs) so that it cannot rot. It checks that every figure is
 * produced and finite — not that goals are met: on a shared CI machine they mean nothing.
 */
describe("pnpm bench --smoke", () => {
  it("produces every figure as a finite number, prints the table and writes the JSON", async () => {
    const out = join(dir, "smoke.json");
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = spawn(process.execPath, [RUN, "--smoke", "--out", out], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("exit", (c) => done({ code: c, stdout, stderr }));
    });
    expect(code, `bench exited ${code}:\n${stderr.slice(-4000)}`).toBe(0);

    const result = JSON.parse(readFileSync(out, "utf8")) as BenchJson;
    expect(result.mode).toBe("smoke");
    expect(Object.keys(result.figures).sort()).toEqual([...FIGURE_KEYS].sort());
    for (const key of FIGURE_KEYS) {
      const f = result.figures[key]!;
      expect(Number.isFinite(f.value), `${key} = ${f.value}`).toBe(true);
      // The table shows every figure by its label, next to its goal when it has one.
      expect(stdout).toContain(f.label);
      if (f.goal !== null) expect(typeof f.met).toBe("boolean");
    }
    for (const key of ["nproc", "node", "redis", "totalMemBytes"]) expect(result.machine[key]).toBeDefined();
    // Plumbing, not goals: keepalives really flowed end to end through the real programs.
    expect(result.figures["throughput.e2e_1worker_per_s"]!.value).toBeGreaterThan(0);
    expect(result.figures["flatness.steady_ratio"]!.value).toBeGreaterThan(0);
    // …and on both servers of the TLS phase, the TLS-only one included.
    const tls = result.details["tls"] as { windows: { plain: { keepalives: number }; tls: { keepalives: number } }[]; protocol: string };
    expect(tls.windows.every((w) => w.plain.keepalives > 0 && w.tls.keepalives > 0)).toBe(true);
    expect(tls.protocol).toMatch(/^TLSv1\.[23]$/);
    // …and plain BullMQ's floor ran its jobs in both of its windows, beside ours.
    const floor = result.details["floor"] as { steady: { jobs: number }; saturated: { jobs: number }; bytesPerPair: number };
    expect(floor.steady.jobs).toBeGreaterThan(0);
    expect(floor.saturated.jobs).toBeGreaterThan(0);
    expect(floor.bytesPerPair).toBeGreaterThan(0);
    expect(Object.keys(result.details).sort()).toEqual(["credentials", "flatness", "floor", "inProcess", "memory", "plain1", "plain2", "registration", "settings", "throughput", "tls"]);
  }, 110_000);
});
