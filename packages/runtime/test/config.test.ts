import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../src/config/load.js";
import { parseDuration } from "../src/duration.js";
import { keysOf, lockTargetsOf, redisTargetOf } from "../src/config/redis-target.js";

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const backend = { id: "pw", url: "http://127.0.0.1:9000/mcp" };

describe("durations", () => {
  it("accepts units and bare milliseconds, rejects the rest", () => {
    expect(parseDuration("300s")).toBe(300_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("1000")).toBe(1000);
    expect(parseDuration(42)).toBe(42);
    expect(parseDuration("5 minutes")).toBeUndefined();
    expect(parseDuration("-1s")).toBeUndefined();
    expect(parseDuration("")).toBeUndefined();
  });
});

describe("TLS and Sentinel credentials", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmk-tls-config-"));
  const pem = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n`);
    return path;
  };

  it("reads the PEM files redis.tls names when the program connects, and gives the lock nodes the same unless lock.tls says otherwise", () => {
    const c = parseConfig({
      redis: { url: "rediss://127.0.0.1:6380", tls: { ca_file: pem("ca.pem"), cert_file: pem("c.pem"), key_file: pem("k.pem"), servername: "redis.test" } },
      lock: { redis_urls: ["redis://127.0.0.1:7000"] },
      backends: [backend],
    });
    expect(redisTargetOf(c)).toMatchObject({
      mode: "standalone",
      tls: { ca: expect.stringContaining("ca.pem"), cert: expect.stringContaining("c.pem"), key: expect.stringContaining("k.pem"), servername: "redis.test" },
    });
    expect(lockTargetsOf(c)).toEqual([{ mode: "standalone", url: "redis://127.0.0.1:7000", tls: redisTargetOf(c)!.tls }]);
    const own = parseConfig({
      redis: { url: "redis://127.0.0.1:6379", tls: { ca_file: pem("ca.pem") } },
      lock: { redis_urls: ["rediss://127.0.0.1:7000"], tls: { ca_file: pem("lock-ca.pem") } },
      backends: [backend],
    });
    expect(lockTargetsOf(own)[0]!.tls?.ca).toContain("lock-ca.pem");
  });

  it("names the key of a TLS file that cannot be read or holds no PEM, and of a certificate without its key", () => {
    writeFileSync(join(dir, "not-pem.txt"), "hello");
    const missing = parseConfig({ redis: { url: "rediss://127.0.0.1:6380", tls: { ca_file: join(dir, "missing.pem") } }, backends: [backend] });
    expect(() => redisTargetOf(missing)).toThrow(/^redis\.tls\.ca_file: cannot read .*missing\.pem \(ENOENT\)$/);
    const notPem = parseConfig({ redis: { url: "rediss://127.0.0.1:6380" }, lock: { redis_urls: ["rediss://127.0.0.1:7000"], tls: { ca_file: join(dir, "not-pem.txt") } }, backends: [backend] });
    expect(() => lockTargetsOf(notPem)).toThrow(/^lock\.tls\.ca_file: .*not a PEM file/);
    expect(problemsOf(() => parseConfig({ redis: { url: "rediss://127.0.0.1:6380" }, lock: { tls: { cert_file: pem("c.pem") } }, backends: [backend] }))).toEqual([
      expect.stringMatching(/^lock\.tls\.key_file: cert_file and key_file go together/),
    ]);
  });

  it("takes the Sentinels' own user and password in sentinel mode only", () => {
    const c = parseConfig({ redis: { mode: "sentinel", sentinels: ["127.0.0.1:26379"], sentinel_name: "m", sentinel_username: "sentinel-user", sentinel_password: "s3cret" }, backends: [backend] });
    expect(redisTargetOf(c)).toMatchObject({ mode: "sentinel", sentinelUsername: "sentinel-user", sentinelPassword: "s3cret" });
    expect(problemsOf(() => parseConfig({ redis: { url: "redis://127.0.0.1:6379", sentinel_password: "x" }, backends: [backend] }))).toEqual([
      expect.stringMatching(/^redis\.sentinel_password: only used when redis\.mode is sentinel/),
    ]);
  });
});

describe("parseConfig", () => {
  it("applies every default and freezes the result", () => {
    const c = parseConfig({ backends: [backend] });
    expect(c.redis).toEqual({
      mode: "standalone",
      url: undefined,
      nodes: [],
      sentinels: [],
      sentinelName: undefined,
      sentinelUsername: undefined,
      sentinelPassword: undefined,
      tls: undefined,
      prefix: "vmk",
    });
    expect(c.keepalive).toEqual({ intervalMs: 300_000, timeoutMs: 10_000, concurrency: 50, maxResponseBytes: 65_536, catchUp: "spread", shards: 1 });
    expect(c.breaker).toEqual({ failureThreshold: 3, probeAfterMs: 1_800_000, minFailureSpanMs: 30_000 });
    expect(c.lock.redisUrls).toEqual([]);
    const b = c.backends[0]!;
    expect(b).toMatchObject({ id: "pw", stateful: true, method: { kind: "ping" }, methodExplicit: false, intervalMs: 300_000 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.backends[0])).toBe(true);
    expect(() => {
      (c.keepalive as { intervalMs: number }).intervalMs = 1;
    }).toThrow();
  });

  it("accepts durations like 300s and 5m, with a 1 s minimum interval", () => {
    expect(parseConfig({ keepalive: { interval: "300s" } }).keepalive.intervalMs).toBe(300_000);
    expect(parseConfig({ keepalive: { interval: "1s", timeout: "500ms" } }).keepalive.intervalMs).toBe(1000);
    expect(problemsOf(() => parseConfig({ keepalive: { interval: "500ms", timeout: "100ms" } }))).toEqual(['keepalive.interval: "500ms" is below the minimum of 1000 ms']);
  });

  it("interpolates ${ENV} and ${ENV:-default} and names the key of an unset variable", () => {
    const c = parseConfig(
      { redis: { url: "${R_URL}" }, backends: [{ ...backend, headers: { Authorization: "Bearer ${TOKEN}", X: "${MISSING:-fallback}" } }] },
      { R_URL: "redis://h:1", TOKEN: "s3cret" },
    );
    expect(c.redis.url).toBe("redis://h:1");
    expect(c.backends[0]!.headers).toEqual({ Authorization: "Bearer s3cret", X: "fallback" });
    expect(problemsOf(() => parseConfig({ backends: [{ ...backend, headers: { A: "${NOPE}" } }] }, {}))).toEqual(["backends[0].headers.A: environment variable NOPE is not set"]);
  });

  it("lets REDIS_URL and friends override the file, and names the variable when it is bad", () => {
    const c = parseConfig({ redis: { url: "redis://file:1" } }, { REDIS_URL: "redis://env:2", LOG_LEVEL: "debug", KEEPALIVE_CONCURRENCY: "7" });
    expect(c.redis.url).toBe("redis://env:2");
    expect(c.log.level).toBe("debug");
    expect(c.keepalive.concurrency).toBe(7);
    expect(problemsOf(() => parseConfig({}, { REDIS_URL: "http://nope" }))).toEqual(["REDIS_URL (redis.url): must be a redis:// or rediss:// URL"]);
  });

  it("names the key and what is wrong for each bad value", () => {
    const problems = problemsOf(() =>
      parseConfig({
        redis: { prefix: "has space" },
        keepalive: { interval: "often", concurrency: 0, catch_up: "later" },
        backends: [
          { id: "bad:id", url: "ftp://x" },
          { ...backend, keepalive_method: "tool:" },
          { ...backend, stateful: "yes" },
        ],
        surprise: 1,
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'unknown key "surprise"',
        expect.stringMatching(/^redis\.prefix: must be 1-64 characters/),
        expect.stringMatching(/^keepalive\.interval: "often" is not a duration/),
        expect.stringMatching(/^keepalive\.concurrency: /),
        expect.stringMatching(/^keepalive\.catch_up: .*"spread".*"at_once"/),
        expect.stringMatching(/^backends\[0\]\.id: must be 1-128 characters/),
        "backends[0].url: must be an http:// or https:// URL",
        "backends[1].keepalive_method: must be ping, none, or tool:<name>",
        "backends[2].stateful: expected boolean, received string",
      ]),
    );
  });

  it("rejects duplicate backend ids and an interval not shorter than the backend's session_ttl", () => {
    const problems = problemsOf(() =>
      parseConfig({
        keepalive: { interval: "5m" },
        backends: [{ ...backend, session_ttl: "5m" }, { ...backend, id: "other", session_ttl: "10m", interval: "10m" }, { ...backend }],
      }),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^backends\[0\]\.session_ttl: backend "pw": keepalive interval 300000 ms must be shorter than its session_ttl 300000 ms/),
      expect.stringMatching(/^backends\[1\]\.interval: backend "other"/),
      'backends[2].id: duplicate backend id "pw" (also backends[0])',
    ]);
  });

  it("rejects a timer duration above 2^31 - 1 ms (Node would fire it at once, in a loop), naming the key", () => {
    expect(() => parseConfig({ sessions: { reap_interval: "25d" } })).toThrow(/sessions\.reap_interval: "25d" is above the maximum of 2147483647 ms/);
    for (const key of [{ keepalive: { interval: "30d" } }, { breaker: { probe_after: 2_147_483_648 } }, { lock: { ttl: "25d" } }])
      expect(() => parseConfig(key)).toThrow(/is above the maximum of 2147483647 ms/);
    expect(parseConfig({ sessions: { reap_interval: "24d" } }).sessions.reapIntervalMs).toBe(24 * 86_400_000);
    // A backend's idle TTL drives no timer: it may be longer.
    expect(parseConfig({ backends: [{ id: "b", url: "http://127.0.0.1/mcp", session_ttl: "90d" }] }).backends[0]!.sessionTtlMs).toBe(90 * 86_400_000);
  });

  it("parses keepalive methods", () => {
    const c = parseConfig({
      backends: [
        { ...backend, id: "a", keepalive_method: "none" },
        { ...backend, id: "b", keepalive_method: "tool:browser_tabs", keepalive_tool_args: { action: "list" }, keepalive_tool_every_tick: true },
      ],
    });
    expect(c.backends[0]!.method).toEqual({ kind: "none" });
    expect(c.backends[1]!.method).toEqual({ kind: "tool", tool: "browser_tabs", args: { action: "list" }, everyTick: true });
    expect(c.backends[1]!.methodExplicit).toBe(true);
    expect(problemsOf(() => parseConfig({ backends: [{ ...backend, keepalive_tool_every_tick: true }] }))).toEqual(["backends[0].keepalive_tool_every_tick: needs keepalive_method: tool:<name>"]);
  });
});

describe("loadConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmk-config-"));
  it("reads YAML, and reports unreadable files and YAML syntax errors with the line", () => {
    const good = join(dir, "good.yaml");
    writeFileSync(good, "keepalive:\n  interval: 2m\nbackends:\n  - id: pw\n    url: http://127.0.0.1:1/mcp\n");
    expect(loadConfig(good, {}).keepalive.intervalMs).toBe(120_000);
    expect(problemsOf(() => loadConfig(join(dir, "missing.yaml"), {}))[0]).toMatch(/^cannot read the file: ENOENT/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "keepalive:\n  interval: [\n");
    expect(problemsOf(() => loadConfig(bad, {}))[0]).toMatch(/^not valid YAML at line \d+/);
    const list = join(dir, "list.yaml");
    writeFileSync(list, "- a\n- b\n");
    expect(problemsOf(() => loadConfig(list, {}))[0]).toMatch(/^\(root\): must be a mapping/);
  });
});

describe("redis modes and keepalive shards", () => {
  it("standalone by default with one shard; cluster defaults to 16 shards; sentinel to 1", () => {
    const standalone = parseConfig({ redis: { url: "redis://127.0.0.1:6379" } });
    expect([standalone.redis.mode, standalone.keepalive.shards]).toEqual(["standalone", 1]);
    expect(redisTargetOf(standalone)).toEqual({ mode: "standalone", url: "redis://127.0.0.1:6379" });
    const cluster = parseConfig({ redis: { mode: "cluster", nodes: ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"] } });
    expect(cluster.keepalive.shards).toBe(16);
    expect(redisTargetOf(cluster)).toEqual({ mode: "cluster", nodes: ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"] });
    expect(keysOf(cluster).tagged).toBe(true);
    const sentinel = parseConfig({ redis: { mode: "sentinel", sentinels: ["10.0.0.5:26379"], sentinel_name: "mymaster" }, keepalive: { shards: 4 } });
    expect([sentinel.keepalive.shards, keysOf(sentinel).shards]).toEqual([4, 4]);
    expect(redisTargetOf(sentinel)).toEqual({ mode: "sentinel", sentinels: ["10.0.0.5:26379"], name: "mymaster", url: undefined });
  });

  it("names the key of every bad combination", () => {
    expect(problemsOf(() => parseConfig({ redis: { mode: "cluster" } }))).toEqual(["redis.nodes: needs at least one seed node when redis.mode is cluster"]);
    expect(problemsOf(() => parseConfig({ redis: { mode: "cluster", nodes: [] } }))).toEqual(["redis.nodes: needs at least one seed node when redis.mode is cluster"]);
    expect(problemsOf(() => parseConfig({ redis: { mode: "cluster", nodes: ["redis://a:1"] } }, { REDIS_URL: "redis://127.0.0.1:6379" }))).toEqual([
      "REDIS_URL (redis.url): not used when redis.mode is cluster (list the seed nodes in redis.nodes)",
    ]);
    expect(problemsOf(() => parseConfig({ redis: { mode: "sentinel", sentinels: ["a:26379"] } }))).toEqual(["redis.sentinel_name: needs the master's name when redis.mode is sentinel"]);
    expect(problemsOf(() => parseConfig({ redis: { mode: "sentinel", sentinel_name: "m" } }))).toEqual(["redis.sentinels: needs at least one host:port when redis.mode is sentinel"]);
    expect(problemsOf(() => parseConfig({ redis: { url: "redis://h:1", nodes: ["redis://a:1"] } }))).toEqual(["redis.nodes: only used when redis.mode is cluster (it is standalone)"]);
    expect(problemsOf(() => parseConfig({ redis: { mode: "sentinel", sentinels: ["nope"], sentinel_name: "m" } }))).toEqual(["redis.sentinels[0]: must be host:port"]);
    expect(problemsOf(() => parseConfig({ redis: { mode: "clustered" } }))[0]).toMatch(/^redis\.mode: /);
    expect(problemsOf(() => parseConfig({ redis: { mode: "cluster", nodes: ["redis://a:1"], prefix: "{vmk}" } }))).toEqual([
      "redis.prefix: must not contain { } in cluster mode or with keepalive.shards > 1 (the key layout adds its own hash tags)",
    ]);
    expect(problemsOf(() => parseConfig({ keepalive: { shards: 0 } }))[0]).toMatch(/^keepalive\.shards: /);
    expect(problemsOf(() => parseConfig({ keepalive: { shards: 1025 } }))[0]).toMatch(/^keepalive\.shards: /);
  });
});
