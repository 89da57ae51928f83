import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACL_ROLES, aclPasswordVariable, aclRules, BULLMQ_COMMANDS, type AclRole } from "@vmcp-keepalive/runtime";
import { createKeys, createVmcpClient, type Keys, type VmcpClient, type VmcpEvent } from "@vmcp-keepalive/shared";
import { freePort, openBackendSession, startEmbeddedRedis, startRedisCluster, startMcpTestBackend, testPrefix, waitFor, type EmbeddedRedis, type McpTestBackend } from "@vmcp-keepalive/testkit";
import { buildGoDriver, startGoDriver, type GoDriver } from "./helpers/go-driver.js";
import { httpUrlOf, runCli, startProgram, stopAll, waitForLog, writeConfig } from "./helpers/processes.js";

/** Go driver builds of this file, removed at the end. */
const goBuilds: { remove(): void }[] = [];
afterAll(() => {
  for (const b of goBuilds.splice(0)) b.remove();
});

/**
 * The Redis ACL users that `vmcp-keepalive acl` generates, loaded from an ACL file into a
 * redis-server of this file's own (and with ACL SETUSER into every node of a Redis Cluster): every
 * program and both vMCP clients run their whole path under their own user with nothing refused,
 * and what each role may do is what docs/operations.md's table says ("Redis users").
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PASSWORDS: Record<string, string> = Object.fromEntries(ACL_ROLES.map((role) => [aclPasswordVariable(role), randomBytes(18).toString("hex")]));
const passwordOf = (role: AclRole) => PASSWORDS[aclPasswordVariable(role)]!;
const ADMIN_PASSWORD = "an-admin-password-for-bull-board";

let server: EmbeddedRedis;
let backend: McpTestBackend;
let admin: Redis;
let config: string;
let prefix: string;
let keys: Keys;
let aclLines: string[];
const urlOf = (role: AclRole) => `redis://${role}:${passwordOf(role)}@127.0.0.1:${server.port}`;

/** ACL LOG entries (refusals) since the last reset, as objects. */
async function aclLog(redis: Redis): Promise<Record<string, string>[]> {
  const entries = (await redis.call("ACL", "LOG", "128")) as unknown[][];
  return entries.map((e) => {
    const o: Record<string, string> = {};
    for (let i = 0; i + 1 < e.length; i += 2) o[String(e[i])] = String(e[i + 1]);
    return { username: o["username"]!, reason: o["reason"]!, context: o["context"]!, object: o["object"]!, count: o["count"]! };
  });
}

beforeAll(async () => {
  prefix = testPrefix("acl");
  keys = createKeys(prefix);
  backend = await startMcpTestBackend({ idleTtlMs: 60_000 });
  const port = await freePort();
  config = writeConfig({
    redis: { url: `redis://127.0.0.1:${port}`, prefix },
    keepalive: { interval: "1s", timeout: "500ms" },
    sessions: { reap_interval: "1s", reconcile_interval: "1s" },
    admin: { password: ADMIN_PASSWORD },
    log: { level: "info" },
    backends: [{ id: "b1", url: backend.url }],
  });
  const generated = await runCli(["acl", "--config", config], PASSWORDS);
  expect(generated.stderr).toBe("");
  expect(generated.code).toBe(0);
  aclLines = generated.stdout.trimEnd().split("\n");
  // The harness's own user (readiness PING, ACL LOG): the default user, as an admin would have one.
  const aclFile = join(mkdtempSync(join(tmpdir(), "vmk-acl-")), "users.acl");
  writeFileSync(aclFile, `${[...aclLines, "user default on nopass ~* &* +@all"].join("\n")}\n`);
  server = await startEmbeddedRedis({ port, aclFile });
  admin = new Redis(server.url, { connectionName: "harness" });
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await backend?.stop();
  await server?.stop();
});

describe("Redis ACL users (vmcp-keepalive acl)", () => {
  it("prints one ACL file line per role, each password only as its SHA-256", () => {
    expect(aclLines.map((l) => l.split(" ").slice(0, 2).join(" "))).toEqual(ACL_ROLES.map((r) => `user ${r}`));
    const text = aclLines.join("\n");
    for (const password of Object.values(PASSWORDS)) expect(text).not.toContain(password);
    for (const line of aclLines) expect(line).toMatch(/^user [a-z]+ on #[0-9a-f]{64} resetchannels /);
  });

  it("docs/operations.md's ACL SETUSER pipeline loads into a running Redis the same users as the ACL file", async () => {
    const doc = readFileSync(join(ROOT, "docs/operations.md"), "utf8");
    const sed = /sed '([^']+)'/.exec(doc.slice(doc.indexOf("### Redis users")))?.[1];
    expect(sed).toBeDefined();
    const running = await startEmbeddedRedis();
    try {
      const commands = spawnSync("sed", [sed!], { input: `${aclLines.join("\n")}\n`, encoding: "utf8" }).stdout;
      const cli = spawnSync("redis-cli", ["-p", String(running.port)], { input: commands, encoding: "utf8" });
      expect(cli.stdout.trim().split("\n")).toEqual(ACL_ROLES.map(() => "OK"));
      const users = async (url: string) => {
        const redis = new Redis(url, { connectionName: "harness" });
        try {
          // Each user's rules as a set: ACL LIST's order is Redis's; `reset` adds sanitize-payload.
          return ((await redis.call("ACL", "LIST")) as string[])
            .filter((u) => !u.startsWith("user default "))
            .map((u) =>
              u
                .split(" ")
                .filter((rule) => rule !== "sanitize-payload")
                .sort(),
            );
        } finally {
          redis.disconnect();
        }
      };
      expect(await users(running.url)).toEqual(await users(server.url));
    } finally {
      await running.stop();
    }
  });

  it("a missing or short VMK_ACL_<ROLE>_PASSWORD exits 2 naming the variable, printing nothing", async () => {
    const { VMK_ACL_WORKER_PASSWORD: _gone, ...rest } = PASSWORDS;
    const missing = await runCli(["acl", "--config", config], { ...rest, VMK_ACL_WORKER_PASSWORD: "" });
    expect(missing).toMatchObject({ code: 2, stdout: "" });
    expect(missing.stderr).toContain("VMK_ACL_WORKER_PASSWORD: not set");
    const short = await runCli(["acl", "--config", config], { ...PASSWORDS, VMK_ACL_OPERATOR_PASSWORD: "short" });
    expect(short).toMatchObject({ code: 2, stdout: "" });
    expect(short.stderr).toContain("VMK_ACL_OPERATOR_PASSWORD: shorter than 16 characters");
  });

  it("the scheduler, the worker, both TypeScript transports, the Go client and the status command run their whole path under their own users, nothing refused", async () => {
    await admin.call("ACL", "LOG", "RESET");
    const scheduler = startProgram("scheduler", ["--config", config], { REDIS_URL: urlOf("scheduler") });
    const worker = startProgram("worker", ["--config", config], { REDIS_URL: urlOf("worker") });
    const clients: VmcpClient[] = [];
    let driver: GoDriver | undefined;
    try {
      await waitForLog(scheduler, "scheduler started");
      await waitForLog(worker, "worker started");

      // A vMCP session through each transport: registered, kept alive, its backend session lost
      // (event), re-initialized under the pair lock, kept alive again, touched, ended.
      const seen: VmcpEvent[] = [];
      const vmcpPath = async (transport: "queue" | "stream") => {
        const sessionId = `s-${transport}`;
        const client = createVmcpClient({
          redisUrl: urlOf("vmcp"),
          prefix,
          replicaId: `r-${transport}`,
          transport,
          lockTimeoutMs: 2_000,
          touchIntervalMs: 200,
          ...(transport === "queue" ? { refreshIntervalMs: 0 } : {}),
        });
        clients.push(client);
        client.onEvent((e) => void seen.push(e));
        const old = await openBackendSession(backend.url);
        expect(await client.registerSession(sessionId, { sessionTtlMs: 600_000, backends: [{ backendId: "b1", backendSessionId: old.sessionId, protocolVersion: old.protocolVersion }] })).toEqual({
          ok: true,
        });
        await waitFor(`a keepalive of ${sessionId}`, () => backend.count("ping", old.sessionId) >= 1, 20_000);
        const del = await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": old.sessionId, "mcp-protocol-version": old.protocolVersion } });
        expect(del.status).toBe(200);
        await waitFor(`backend.session_expired of ${sessionId}`, () => seen.some((e) => e.type === "backend.session_expired" && e.sessionId === sessionId), 20_000);
        let fresh = old;
        const result = await client.reinitializeBackend(sessionId, "b1", async () => {
          fresh = await openBackendSession(backend.url);
          return { backendSessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion };
        });
        expect(result).toMatchObject({ lock: "held", state: "written", schedulerRestoreRequested: true });
        await waitFor(`keepalives of ${sessionId}'s new backend session`, () => backend.count("ping", fresh.sessionId) >= 2, 20_000);
        client.touch(sessionId, { backendIds: ["b1"] });
        return { client, sessionId };
      };
      const [queued, streamed] = await Promise.all([vmcpPath("queue"), vmcpPath("stream"), goPath()]);

      // A session whose vMCP went away without ending it: the reaper ends it.
      expect((await queued.client.registerSession("s-orphan", { sessionTtlMs: 1_000, backends: [{ backendId: "b1", backendSessionId: "gone", protocolVersion: "2025-06-18" }] })).ok).toBe(true);

      // The status command as the operator, while pairs are kept alive.
      const status = await runCli(["status", "--json", "--config", config], { REDIS_URL: urlOf("operator") });
      expect(status.code, status.stderr).toBe(0);
      const rows = JSON.parse(status.stdout) as { sessionId: string; why: string }[];
      expect(rows.filter((r) => r.why === "active").map((r) => r.sessionId)).toEqual(expect.arrayContaining(["s-queue", "s-stream", "g1"]));
      // The admin CLI's messages are a vMCP's: it publishes them as the vmcp user.
      expect(await runCli(["touch", "--session", "s-queue", "--config", config], { REDIS_URL: urlOf("vmcp") })).toMatchObject({ code: 0 });

      // Bull Board (every queue, its jobs, Redis details) and /metrics, as the scheduler.
      const base = await httpUrlOf(scheduler);
      const auth = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64")}` };
      for (const path of [
        "/admin/queues/api/queues",
        `/admin/queues/api/queues?activeQueue=keepalive&status=completed&page=1&jobsPerPage=10`,
        `/admin/queues/api/queues?activeQueue=vmcp-sessions&status=latest&page=1&jobsPerPage=10`,
        `/admin/queues/api/queues?activeQueue=vmcp-events&status=completed&page=1&jobsPerPage=10`,
        "/admin/queues/api/redis/stats",
      ]) {
        const r = await fetch(`${base}${path}`, { headers: auth });
        expect(r.status, path).toBe(200);
      }
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^vmk_redis_up 1$/m);
      expect(metrics).toMatch(/^vmk_breaker_state\{backend="b1",state="closed"\} 1$/m);

      await Promise.all([queued.client.endSession(queued.sessionId), streamed.client.endSession(streamed.sessionId)]);
      driver!.send("end g1");
      await waitFor("every pair ended or reaped", async () => (await admin.keys(keys.patterns.pair)).length === 0, 20_000);
      for (const client of clients.splice(0)) await client.close();
      const go = driver!;
      driver = undefined;
      expect(await go.stop(), go.stderr()).toBe(0);
    } finally {
      for (const client of clients) await client.close();
      await driver?.stop();
      expect(await stopAll([scheduler, worker])).toEqual([0, 0]);
    }
    expect(await aclLog(admin)).toEqual([]);

    async function goPath() {
      const built = buildGoDriver();
      goBuilds.push(built);
      driver = startGoDriver(built.binary, { VMK_E2E_REDIS: urlOf("vmcp"), VMK_E2E_PREFIX: prefix, VMK_E2E_BACKEND: backend.url, VMK_E2E_SESSIONS: "g1" });
      const g1 = String(((await driver.line("registered")).sessions as Record<string, string>)["g1"]);
      await waitFor("a keepalive of the Go client's session", () => backend.count("ping", g1) >= 1, 20_000);
      await fetch(backend.url, { method: "DELETE", headers: { "mcp-session-id": g1, "mcp-protocol-version": "2025-06-18" } });
      expect(await driver.line("reinitialized", 30_000)).toMatchObject({ sessionId: "g1", lock: "held", state: "written", restore: true });
    }
  }, 120_000);
});

describe("on a Redis Cluster (hash-tagged keys, 16 shards)", () => {
  it("the scheduler, the worker, the TypeScript client and the status command run their path under their own users, nothing refused on any node", async () => {
    const cluster = await startRedisCluster({ replicasPerMaster: 0 });
    const clusterBackend = await startMcpTestBackend({ idleTtlMs: 60_000 });
    const nodes = cluster.processes.map((p) => new Redis(p.url, { connectionName: "harness" }));
    const programs: Awaited<ReturnType<typeof startProgram>>[] = [];
    let client: VmcpClient | undefined;
    try {
      const clusterPrefix = testPrefix("aclc");
      // One config for every program, each with its own user: a cluster-mode config has no REDIS_URL.
      const clusterConfig = writeConfig({
        redis: { mode: "cluster", nodes: cluster.nodes.map((u) => u.replace("redis://", "redis://${REDIS_USERNAME}:${REDIS_USER_PASSWORD}@")), prefix: clusterPrefix },
        keepalive: { interval: "1s", timeout: "500ms" },
        log: { level: "info" },
        backends: [{ id: "b1", url: clusterBackend.url }],
      });
      const as = (role: AclRole) => ({ REDIS_USERNAME: role, REDIS_USER_PASSWORD: passwordOf(role) });
      const generated = await runCli(["acl", "--config", clusterConfig], { ...PASSWORDS, ...as("operator") });
      expect(generated.code, generated.stderr).toBe(0);
      const lines = generated.stdout.trimEnd().split("\n");
      expect(lines[0]).toContain(`~${clusterPrefix}:{*}:pair:*:*`);
      expect(lines[0]).toContain("+cluster|slots");
      // Users are per node: every node gets every line.
      for (const node of nodes) for (const line of lines) await node.call("ACL", "SETUSER", ...line.split(" ").slice(1, 2), "reset", ...line.split(" ").slice(2));

      const started = [startProgram("scheduler", ["--config", clusterConfig], as("scheduler")), startProgram("worker", ["--config", clusterConfig], as("worker"))];
      programs.push(...started);
      await waitForLog(started[0]!, "scheduler started", 30_000);
      await waitForLog(started[1]!, "worker started", 30_000);
      const url = (u: string) => u.replace("redis://", `redis://vmcp:${passwordOf("vmcp")}@`);
      client = createVmcpClient({ redis: { mode: "cluster", nodes: cluster.nodes.map(url) }, prefix: clusterPrefix, replicaId: "r1", lockTimeoutMs: 2_000, transport: "stream" });
      const seen: VmcpEvent[] = [];
      client.onEvent((e) => void seen.push(e));
      const old = await openBackendSession(clusterBackend.url);
      expect((await client.registerSession("c1", { sessionTtlMs: 600_000, backends: [{ backendId: "b1", backendSessionId: old.sessionId, protocolVersion: old.protocolVersion }] })).ok).toBe(true);
      await waitFor("a keepalive on the cluster", () => clusterBackend.count("ping", old.sessionId) >= 1, 20_000);
      await fetch(clusterBackend.url, { method: "DELETE", headers: { "mcp-session-id": old.sessionId, "mcp-protocol-version": old.protocolVersion } });
      await waitFor("backend.session_expired", () => seen.some((e) => e.type === "backend.session_expired"), 20_000);
      let fresh = old;
      const result = await client.reinitializeBackend("c1", "b1", async () => {
        fresh = await openBackendSession(clusterBackend.url);
        return { backendSessionId: fresh.sessionId, protocolVersion: fresh.protocolVersion };
      });
      expect(result).toMatchObject({ lock: "held", state: "written" });
      await waitFor("keepalives of the new backend session", () => clusterBackend.count("ping", fresh.sessionId) >= 1, 20_000);
      const status = await runCli(["status", "--json", "--config", clusterConfig], as("operator"));
      expect(status.code, status.stderr).toBe(0);
      expect((JSON.parse(status.stdout) as { sessionId: string }[]).map((r) => r.sessionId)).toEqual(["c1"]);
      await client.endSession("c1");
      await waitFor("the pair ended", async () => (JSON.parse((await runCli(["status", "--json", "--config", clusterConfig], as("operator"))).stdout) as unknown[]).length === 0, 15_000);
      await client.close();
      client = undefined;
      expect(await stopAll(programs.splice(0))).toEqual([0, 0]);
      const refused = (await Promise.all(nodes.map((n) => aclLog(n)))).flat();
      expect(refused).toEqual([]);
    } finally {
      await client?.close();
      await stopAll(programs);
      for (const n of nodes) n.disconnect();
      await clusterBackend.stop();
      await cluster.stop();
    }
  }, 120_000);
});

/**
 * The command each row of docs/operations.md's table ("Redis users") tries, by its first cell.
 * They run in this order, on the keys of the test's layout.
 */
const PROBES: Record<string, (k: Keys) => (string | number)[]> = {
  "add a lifecycle message to the ingress stream (`XADD`)": (k) => ["XADD", k.sessionMessagesStream, "*", "message", "{}"],
  "read the ingress stream (`XRANGE`)": (k) => ["XRANGE", k.sessionMessagesStream, "-", "+"],
  "read rejected ingress entries (`XRANGE`)": (k) => ["XRANGE", k.sessionMessagesRejectedStream, "-", "+"],
  "jobs of `vmcp-sessions` (`LLEN` of its wait list)": (k) => ["LLEN", `${k.sessionsQueue.prefix}:${k.sessionsQueue.name}:wait`],
  "jobs of `vmcp-events` (`LLEN` of its wait list)": (k) => ["LLEN", `${k.eventsQueue.prefix}:${k.eventsQueue.name}:wait`],
  "read a keepalive queue's backlog (`LLEN` of its wait list)": (k) => ["LLEN", `${k.keepaliveQueue(0).prefix}:${k.keepaliveQueue(0).name}:wait`],
  "write a keepalive queue (`HSET` of its meta hash)": (k) => ["HSET", `${k.keepaliveQueue(0).prefix}:${k.keepaliveQueue(0).name}:meta`, "probe", "1"],
  "read the event stream (`XRANGE`)": (k) => ["XRANGE", k.sessionEventsStream, "-", "+"],
  "add to the event stream (`XADD`)": (k) => ["XADD", k.sessionEventsStream, "*", "event", "{}"],
  "create a consumer group on the event stream (`XGROUP CREATE`)": (k) => ["XGROUP", "CREATE", k.sessionEventsStream, `probe-${randomBytes(4).toString("hex")}`, "$", "MKSTREAM"],
  "read a pair hash (`HGETALL`)": (k) => ["HGETALL", k.pair("s1", "b1")],
  "write a pair hash (`HSET`)": (k) => ["HSET", k.pair("s1", "b1"), "probe", "1"],
  "delete a pair hash (`DEL`)": (k) => ["DEL", k.pair("s1", "b1")],
  "take a pair lock (`SET … NX PX`)": (k) => ["SET", k.pairLock("s1", "b1"), randomBytes(8).toString("hex"), "NX", "PX", 1_000],
  "read a session hash (`HGETALL`)": (k) => ["HGETALL", k.session("s1")],
  "read a backend's breaker hash (`HGETALL`)": (k) => ["HGETALL", k.backend("b1")],
  "write a backend's breaker hash (`HSET`)": (k) => ["HSET", k.backend("b1"), "probe", "1"],
  "run a Lua script (`EVAL`)": () => ["EVAL", "return 1", 0],
  "server information (`INFO`)": () => ["INFO", "server"],
  "list key names (`SCAN`)": () => ["SCAN", 0],
  "list every key (`KEYS`)": () => ["KEYS", "*"],
  "a key under the prefix outside the layout (`GET`)": (k) => ["GET", `${k.prefix}:other`],
  "delete every key (`FLUSHALL`)": () => ["FLUSHALL"],
  "server configuration (`CONFIG GET`)": () => ["CONFIG", "GET", "maxmemory"],
  "other clients' connections (`CLIENT LIST`)": () => ["CLIENT", "LIST"],
  "Pub/Sub (`PUBLISH`)": (k) => ["PUBLISH", `${k.prefix}:probe`, "x"],
  "users (`ACL LIST`)": () => ["ACL", "LIST"],
};

/** The rows of docs/operations.md's table of what each role may do: first cell → role → allowed. */
function documentedPermissions(): Map<string, Record<AclRole, boolean>> {
  const doc = readFileSync(join(ROOT, "docs/operations.md"), "utf8");
  const lines = doc.slice(doc.indexOf("### Redis users")).split("\n");
  const header = lines.findIndex((l) => l.startsWith("| what (command tried) |"));
  expect(header, 'the table of docs/operations.md, "Redis users"').toBeGreaterThan(0);
  const roles = lines[header]!.split("|")
    .slice(2, -1)
    .map((c) => c.trim());
  expect(roles).toEqual([...ACL_ROLES]);
  const rows = new Map<string, Record<AclRole, boolean>>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const [what = "", ...cells] = line
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim());
    expect(
      cells.every((c) => c === "✓" || c === "—"),
      line,
    ).toBe(true);
    rows.set(what, Object.fromEntries(ACL_ROLES.map((role, i) => [role, cells[i] === "✓"])) as Record<AclRole, boolean>);
  }
  return rows;
}

/** The Redis commands a Lua text calls: `redis.call("X"`, BullMQ's `rcall("X"`; non-literal names as `$<variable>`. */
function scriptCommands(text: string): Set<string> {
  const found = new Set<string>();
  for (const m of text.matchAll(/\b(?:rcall|redis\.p?call)\(\s*(?:["']([A-Za-z]+)["']|([A-Za-z_][A-Za-z0-9_]*))/g)) found.add(m[1] ? m[1].toLowerCase() : `$${m[2]}`);
  return found;
}

const filesUnder = (dir: string, suffix: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path, suffix) : name.endsWith(suffix) ? [path] : [];
  });

describe('what each role may do (docs/operations.md, "Redis users")', () => {
  it("is what Redis answers when each user tries each row of the table", async () => {
    const documented = documentedPermissions();
    expect([...documented.keys()]).toEqual(Object.keys(PROBES));
    const answers: string[] = [];
    for (const role of ACL_ROLES) {
      const redis = new Redis(urlOf(role), { lazyConnect: true, maxRetriesPerRequest: 0, connectionName: `probe-${role}` });
      await redis.connect();
      try {
        for (const [what, probe] of Object.entries(PROBES)) {
          const refusal = await redis.call(...(probe(keys) as [string, ...(string | number)[]])).then(
            () => undefined,
            (err: Error) => (err.message.startsWith("NOPERM") ? err.message : undefined),
          );
          if ((refusal === undefined) !== documented.get(what)![role]) answers.push(`${role}: ${what}: ${refusal ?? "allowed"}`);
        }
      } finally {
        redis.disconnect();
      }
    }
    expect(answers, "rows where Redis and the table disagree").toEqual([]);
  });

  it("the operator has no command that writes, by Redis's own flags", async () => {
    const operator = aclRules(keys, "standalone").find((r) => r.role === "operator")!;
    const info = (await admin.call("COMMAND", "INFO", ...operator.commands)) as [string, number, string[]][];
    expect(info.map((c) => c[0])).toEqual(operator.commands);
    expect(info.filter((c) => c[2].includes("write")).map((c) => c[0])).toEqual([]);
  });
});

describe("the commands of every script a role runs are in its rules (a script's commands are checked against its caller)", () => {
  const roleCommands = (role: AclRole) => new Set(aclRules(createKeys("vmk"), "standalone").find((r) => r.role === role)!.commands);

  it("BullMQ's scripts: BULLMQ_COMMANDS, which every BullMQ role has", () => {
    const bullmq = dirname(dirname(createRequire(join(ROOT, "test/package.json")).resolve("bullmq")));
    const called = new Set(filesUnder(join(bullmq, "cjs/scripts"), ".js").flatMap((f) => [...scriptCommands(readFileSync(f, "utf8"))]));
    // The names BullMQ passes in a variable, and what each may hold.
    const dynamic: Record<string, string[]> = { $pushCmd: ["lpush", "rpush"], $countCommand: ["hlen", "scard"], $command: ["hscan", "sscan"] };
    expect([...called].filter((c) => c.startsWith("$")).sort()).toEqual(Object.keys(dynamic).sort());
    const needed = [...called].flatMap((c) => dynamic[c] ?? [c]);
    expect(needed.length).toBeGreaterThan(50);
    expect(needed.filter((c) => !(BULLMQ_COMMANDS as readonly string[]).includes(c))).toEqual([]);
    for (const role of ["vmcp", "scheduler", "worker"] as const)
      expect(
        BULLMQ_COMMANDS.filter((c) => !roleCommands(role).has(c)),
        role,
      ).toEqual([]);
  });

  it.each([
    ["packages/shared/lua", ["vmcp", "scheduler", "worker"]],
    ["packages/scheduler/lua", ["scheduler"]],
    ["packages/worker/lua", ["worker"]],
  ] as const)("%s: the commands of %j", (dir, roles) => {
    const called = new Set(filesUnder(join(ROOT, dir), ".lua").flatMap((f) => [...scriptCommands(readFileSync(f, "utf8"))]));
    expect(called.size).toBeGreaterThan(3);
    for (const role of roles)
      expect(
        [...called].filter((c) => !roleCommands(role).has(c)),
        role,
      ).toEqual([]);
  });

  it("Redlock's scripts (the pair lock over lock.redis_urls): the vmcp and worker users'", () => {
    const redlock = readFileSync(createRequire(join(ROOT, "packages/shared/package.json")).resolve("redlock"), "utf8");
    const called = scriptCommands(redlock);
    expect([...called].sort()).toEqual(["del", "exists", "get", "set"]);
    for (const role of ["vmcp", "worker"] as const)
      expect(
        [...called].filter((c) => !roleCommands(role).has(c)),
        role,
      ).toEqual([]);
  });
});
