import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { BACKEND_FIELDS, FAILURE_REASONS, OFF_REASONS, SKIP_REASONS, VmcpEventSchema } from "@vmcp-keepalive/shared";
import { createKeepaliveMetrics, LATENCY_BUCKETS_MS } from "../src/internal.js";

/*
 * docs/keepalive-policy.md and the code's closed unions must not drift: the reason unions are
 * the metric label sets, and operators read their meaning in the doc (fastify's error-code
 * registry test).
 */

const DOC = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs/keepalive-policy.md"), "utf8");
/** docs/operations.md holds the one metrics table. */
const OPERATIONS = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), "../../../docs/operations.md"), "utf8");

/** First-column `code` values of the first table after the line that starts with `marker`. */
function tableAfter(marker: string): string[] {
  const lines = DOC.split("\n");
  const start = lines.findIndex((l) => l.startsWith(marker));
  expect(start, `doc has a line starting with ${JSON.stringify(marker)}`).toBeGreaterThanOrEqual(0);
  const out: string[] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("|")) {
      inTable = true;
      const first = /^\|\s*`([^`]+)`/.exec(line)?.[1];
      if (first) out.push(first);
    } else if (inTable) break;
  }
  return out;
}

describe("docs/keepalive-policy.md and docs/operations.md are in step with the code", () => {
  it("failure reasons", () => {
    expect(tableAfter("Failure reasons")).toEqual([...FAILURE_REASONS]);
  });

  it("skip reasons", () => {
    expect(tableAfter("Skip reasons")).toEqual([...SKIP_REASONS]);
  });

  it("off reasons", () => {
    expect(tableAfter("A pair gets no scheduler")).toEqual([...OFF_REASONS]);
  });

  it("backend hash fields", () => {
    expect(tableAfter("### Backend hash fields")).toEqual(Object.values(BACKEND_FIELDS));
  });

  it("metrics: names, types, labels and buckets", async () => {
    const registry = new Registry();
    createKeepaliveMetrics(registry);
    const metrics = await registry.getMetricsAsJSON();
    const rows = OPERATIONS.split("\n").filter((l) => /^\| `keepalive_[a-z_]+` \| (counter|histogram|gauge) \|/.test(l));
    expect(rows.map((r) => /`([^`]+)`/.exec(r)?.[1])).toEqual(metrics.map((m) => m.name));
    for (const m of metrics) {
      const row = rows.find((r) => r.startsWith(`| \`${m.name}\``))!;
      const cells = row.split("|").map((c) => c.trim());
      expect(cells[2], m.name).toBe(m.type);
      const labels = [...(cells[3] ?? "").matchAll(/`([a-z_]+)`/g)].map((x) => x[1]);
      const declared = (registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames;
      expect(labels, m.name).toEqual(declared);
    }
    expect(OPERATIONS).toContain(`buckets ${LATENCY_BUCKETS_MS.join(", ")}`);
  });

  it("vmcp-events types", () => {
    const types = VmcpEventSchema.options.map((o) => o.shape.type.value);
    expect(tableAfter("## Events on `vmcp-events`")).toEqual(types);
  });
});

describe("backends whose idle timer only tool calls reset", () => {
  it("the policy doc's Playwright example calls its tool on every tick (ping does not keep the browser)", () => {
    const example = /- id: playwright\n((?: {4}.*\n)+)/.exec(DOC);
    expect(example, "the policy doc shows a playwright backend").toBeTruthy();
    const block = example![1]!;
    expect(block).toMatch(/keepalive_method: tool:browser_tabs/);
    expect(block).toMatch(/keepalive_tool_every_tick: true/);
  });

  it("the policy doc says which backends need the every-tick tool", () => {
    expect(DOC).toContain("**Which backends need the every-tick tool.**");
    expect(DOC).toMatch(/Playwright MCP started with `--idle-timeout`: `ping` succeeds\s+but does not reset the browser's idle timer/);
  });
});
