import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createSessionPublisher } from "@vmcp-keepalive/shared";
import { flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { get } from "./helpers/ops.js";
import { httpUrlOf, startProgram, waitForLog, writeConfig, type RunningProcess } from "./helpers/processes.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ARTIFACTS = join(ROOT, "test-artifacts");
const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/**
 * Operators inspect jobs in Bull Board, behind authentication: headless Chromium on
 * /admin/queues of a real scheduler.
 * Without credentials: 401. Logged in: the keepalive job scheduler of a registered pair and a
 * rejected registration with its reason are on screen. Screenshots go to test-artifacts/.
 */
describe("Bull Board on the scheduler", () => {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix("ops-board");
  const PASSWORD = "correct-horse-battery-staple";
  const redis = new Redis(redisUrl, { connectionName: "harness" });
  const profiles: string[] = [];
  const contexts: BrowserContext[] = [];
  let scheduler: RunningProcess;
  let base: string;

  const browse = async (httpCredentials?: { username: string; password: string }) => {
    const userDataDir = mkdtempSync(join(tmpdir(), "vmk-chromium-"));
    profiles.push(userDataDir);
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 900 },
      ...(httpCredentials ? { httpCredentials } : {}),
    });
    contexts.push(context);
    return context;
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const config = writeConfig({
      redis: { url: redisUrl, prefix },
      // A long interval: the job scheduler sits in Bull Board, no worker needed.
      keepalive: { interval: "5m", timeout: "5s" },
      // "session message applied" is a debug line.
      log: { level: "debug" },
      admin: { username: "ops", password: "${VMK_BOARD_PASSWORD}" },
      http: { host: "127.0.0.1", port: 0 },
      backends: [{ id: "playwright", url: "http://127.0.0.1:9/mcp" }],
    });
    scheduler = startProgram("scheduler", ["--config", config], { VMK_BOARD_PASSWORD: PASSWORD });
    base = await httpUrlOf(scheduler);
    await waitForLog(scheduler, "scheduler started");
    const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "board-test" });
    await publisher.register("sess-board-1", { sessionTtlMs: 600_000, backends: [{ backendId: "playwright", backendSessionId: "bsid-1" }] });
    // Names a backend the config does not have: rejected with reason unknown_backend.
    await publisher.register("sess-rejected", { sessionTtlMs: 600_000, backends: [{ backendId: "not-configured", backendSessionId: "bsid-2" }] });
    await publisher.close();
    await waitForLog(scheduler, "session message applied");
    await waitForLog(scheduler, "registration message rejected");
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    for (const d of profiles) rmSync(d, { recursive: true, force: true });
    await scheduler?.stop();
    await flushPrefix(redisUrl, prefix);
    redis.disconnect();
  });

  it("answers 401 without credentials (pages and API), to a browser and to plain HTTP", async () => {
    expect((await get(`${base}/admin/queues`)).status).toBe(401);
    expect((await get(`${base}/admin/queues/api/queues`)).status).toBe(401);
    const wrong = Buffer.from("ops:wrong-password").toString("base64");
    expect((await get(`${base}/admin/queues/api/queues`, { authorization: `Basic ${wrong}` })).status).toBe(401);
    // /metrics and the probes stay open (Prometheus and the kubelet scrape them).
    expect((await get(`${base}/metrics`)).status).toBe(200);

    const context = await browse();
    const page = await context.newPage();
    // Chromium gets the 401 challenge; with no credentials to offer, the navigation then fails
    // with ERR_INVALID_AUTH_CREDENTIALS. Read the response itself.
    const [response, navigation] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${base}/admin/queues`, { timeout: 20_000 }),
      page.goto(`${base}/admin/queues`).then(
        () => "loaded",
        (err: Error) => err.message,
      ),
    ]);
    expect(response.status()).toBe(401);
    expect(response.headers()["www-authenticate"]).toMatch(/^Basic realm=/);
    expect(navigation).toMatch(/ERR_INVALID_AUTH_CREDENTIALS|401/);
    // An artifact, not an assertion: Chromium cannot always capture its own error page
    // ("Unable to capture screenshot").
    await page.screenshot({ path: join(ARTIFACTS, "bull-board-unauthenticated.png") }).catch((err: Error) => console.log(`no screenshot of the 401 page: ${err.message}`));
  });

  it("logged in, shows the pair's job scheduler and the rejected registration with its reason", async () => {
    const context = await browse({ username: "ops", password: PASSWORD });
    const page = await context.newPage();
    const home = await page.goto(`${base}/admin/queues`);
    expect(home?.status()).toBe(200);
    for (const q of ["vmcp-sessions", "keepalive", "vmcp-events"]) {
      await page.getByText(q, { exact: true }).first().waitFor({ timeout: 20_000 });
    }
    await page.screenshot({ path: join(ARTIFACTS, "bull-board-overview.png"), fullPage: true });

    await page.goto(`${base}/admin/queues/job-schedulers`);
    await page.getByText("ka:sess-board-1:playwright").first().waitFor({ timeout: 20_000 });
    await page.screenshot({ path: join(ARTIFACTS, "bull-board-job-schedulers.png"), fullPage: true });

    await page.goto(`${base}/admin/queues/queue/vmcp-sessions?status=failed`);
    await page
      .getByText(/unknown_backend/)
      .first()
      .waitFor({ timeout: 20_000 });
    await page.screenshot({ path: join(ARTIFACTS, "bull-board-rejected-registration.png"), fullPage: true });
    expect(await page.content()).toContain("not-configured");
  });

  it("refuses to serve Bull Board unauthenticated beyond loopback", async () => {
    const config = writeConfig({ redis: { url: redisUrl, prefix }, http: { host: "0.0.0.0", port: 0 } });
    const p = startProgram("scheduler", ["--config", config]);
    const code = await p.exited();
    expect(code).toBe(2);
    expect(p.output()).toMatch(/admin\.password: required when http\.host \(0\.0\.0\.0\) is not a loopback address/);
  });
});
