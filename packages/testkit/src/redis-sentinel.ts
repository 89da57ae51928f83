import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { replicationStreamProblem } from "./redis-cluster.js";
import { distinctPorts, formatReply, localServerArgs, redisCommand, spawnRedisProcess, type RedisEndpoint, type RedisProcess, type RespValue } from "./redis-process.js";
import { tlsClientOptions, tlsServerDirectives, type TestTls, type TestTlsClient } from "./test-pki.js";
import { sleep } from "./wait.js";

export interface LocalRedisSentinel {
  /** "127.0.0.1:port" of each sentinel. */
  readonly sentinels: readonly string[];
  /** @defaultValue "mymaster" */
  readonly masterName: string;
  /** With the `tls` option: what a client needs (CA, client certificate), as Node's and ioredis' `tls` options. */
  readonly tls?: TestTlsClient;
  /** Current master according to the sentinels (SENTINEL get-master-addr-by-name). */
  master(): Promise<{ host: string; port: number }>;
  /** SIGKILLs the current master's redis-server; returns its port. */
  killMaster(): Promise<number>;
  /** Waits until the sentinels report a master different from `oldPort` that answers ROLE as master; returns ms waited. */
  waitFailover(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Stops the sentinels, then the servers (SIGTERM, SIGKILL after 5 s), and deletes the temp dirs. Idempotent. */
  stop(): Promise<void>;
}

export interface LocalRedisSentinelOptions {
  /** Replicas of the master. @defaultValue 1 */
  replicas?: number;
  /** Sentinel processes; the quorum is a majority of them. @defaultValue 3 */
  sentinels?: number;
  /** @defaultValue "mymaster" */
  masterName?: string;
  /** sentinel down-after-milliseconds. @defaultValue 1000 */
  downAfterMs?: number;
  /** sentinel failover-timeout (a failed election is retried after twice this). @defaultValue 3000 */
  failoverTimeoutMs?: number;
  /**
   * TLS only, with the test CA: the servers and the Sentinels listen with TLS alone (no plain
   * port), replicas sync from the master over TLS, and the Sentinels reach the servers and each
   * other over TLS (`tls-replication yes`), presenting the server certificate as their client's.
   */
  tls?: TestTls;
  /** The data nodes' password: `requirepass` and `masterauth` on each server, `sentinel auth-pass` on the Sentinels. */
  password?: string;
  /** The Sentinels' own password (`requirepass` in sentinel.conf, which they also use with each other). */
  sentinelPassword?: string;
}

/**
 * Starts a real Sentinel setup on loopback: one master, `replicas` replicas and `sentinels`
 * sentinels (`redis-server <conf> --sentinel`). Resolves once every replica is in sync and every
 * sentinel knows the master, all replicas and all other sentinels, so a failover can reach quorum.
 * With `tls`, `password` and `sentinelPassword`, the harness's own commands (readiness, topology,
 * `master`, `killMaster`, `waitFailover`) go over TLS with the client certificate and AUTH.
 */
export async function startRedisSentinel(options: LocalRedisSentinelOptions = {}): Promise<LocalRedisSentinel> {
  const replicaCount = options.replicas ?? 1;
  const sentinelCount = options.sentinels ?? 3;
  const masterName = options.masterName ?? "mymaster";
  const downAfterMs = options.downAfterMs ?? 1000;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 3000;
  if (!Number.isInteger(replicaCount) || replicaCount < 1) throw new Error(`a failover needs at least 1 replica (got ${replicaCount})`);
  if (!Number.isInteger(sentinelCount) || sentinelCount < 1) throw new Error(`sentinels must be a positive integer (got ${sentinelCount})`);
  if (!/^[\w.-]+$/.test(masterName)) throw new Error(`masterName must be letters, digits, '.', '_' or '-' (got ${JSON.stringify(masterName)})`);
  for (const [name, value] of [
    ["password", options.password],
    ["sentinelPassword", options.sentinelPassword],
  ] as const) {
    // Written into sentinel.conf unquoted.
    if (value !== undefined && !/^[\w.-]+$/.test(value)) throw new Error(`${name} must be letters, digits, '.', '_' or '-'`);
  }
  const clientTls = options.tls ? tlsClientOptions(options.tls.pki) : undefined;
  // How the harness's own commands reach a server and a Sentinel.
  const serverAt = (port: number): RedisEndpoint => ({ port, tls: clientTls, password: options.password });
  const sentinelAt = (port: number): RedisEndpoint => ({ port, tls: clientTls, password: options.sentinelPassword });
  const quorum = Math.floor(sentinelCount / 2) + 1;

  const root = mkdtempSync(join(tmpdir(), "vmk-redis-sentinel-"));
  const servers: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const stopAll = async () => {
    // Sentinels first, so they don't start a failover while the servers go down.
    await Promise.all(sentinels.map((s) => s.stop()));
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const pickPort = distinctPorts();

    const masterPort = await pickPort();
    for (let i = 0; i <= replicaCount; i++) {
      const port = i === 0 ? masterPort : await pickPort();
      const dir = join(root, `server-${port}`);
      mkdirSync(dir);
      const args = [
        ...localServerArgs(port, dir, { tls: options.tls }),
        // Start a replica's full sync at once instead of waiting 5 s for more replicas.
        "--repl-diskless-sync-delay",
        "0",
        "--replica-priority",
        "100",
        ...(options.tls ? ["--tls-replication", "yes"] : []),
        ...(options.password ? ["--requirepass", options.password, "--masterauth", options.password] : []),
        ...(i === 0 ? [] : ["--replicaof", "127.0.0.1", String(masterPort)]),
      ];
      servers.push(spawnRedisProcess(args, port, dir, "redis-server", clientTls));
    }
    await Promise.all(servers.map((s) => s.ready));
    await settle("the replicas to sync", async () => {
      for (const replica of servers.slice(1)) {
        const info = formatReply(await redisCommand(serverAt(replica.port), ["INFO", "replication"]));
        if (!/^master_link_status:up\r?$/m.test(info) || !/^master_sync_in_progress:0\r?$/m.test(info)) return `${replica.port}: replica not in sync yet`;
      }
      return replicationStreamProblem(serverAt(masterPort), replicaCount);
    });

    for (let i = 0; i < sentinelCount; i++) {
      const port = await pickPort();
      const dir = join(root, `sentinel-${port}`);
      mkdirSync(dir);
      const conf = join(dir, "sentinel.conf");
      // Sentinel rewrites this file (myid, known replicas and sentinels), so it must be writable.
      writeFileSync(
        conf,
        [
          ...(options.tls ? [...tlsServerDirectives(options.tls, port).map(([name, value]) => `${name} ${value}`), "tls-replication yes"] : [`port ${port}`]),
          ...(options.sentinelPassword ? [`requirepass ${options.sentinelPassword}`] : []),
          "bind 127.0.0.1",
          "protected-mode no",
          "daemonize no",
          `dir ${dir}`,
          "loglevel warning",
          "sentinel resolve-hostnames no",
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} ${quorum}`,
          ...(options.password ? [`sentinel auth-pass ${masterName} ${options.password}`] : []),
          `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
          `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${masterName} 1`,
          "",
        ].join("\n"),
      );
      sentinels.push(spawnRedisProcess([conf, "--sentinel"], port, dir, "redis-server", clientTls));
    }
    await Promise.all(sentinels.map((s) => s.ready));
    // Replicas are learnt from the master's INFO, other sentinels from hello messages (every 2 s).
    await settle("the sentinels to discover the topology", async () => {
      for (const sentinel of sentinels) {
        const master = fields(await redisCommand(sentinelAt(sentinel.port), ["SENTINEL", "MASTER", masterName]));
        if (master.flags !== "master") return `${sentinel.port}: master flagged ${master.flags}`;
        const replicas = (await redisCommand(sentinelAt(sentinel.port), ["SENTINEL", "REPLICAS", masterName])) as RespValue[];
        const linked = replicas.map(fields).filter((r) => r.flags === "slave" && r["master-link-status"] === "ok");
        if (linked.length !== replicaCount) return `${sentinel.port}: knows ${linked.length} of ${replicaCount} replicas`;
        const others = ((await redisCommand(sentinelAt(sentinel.port), ["SENTINEL", "SENTINELS", masterName])) as RespValue[]).map(fields).filter((s) => s.flags === "sentinel");
        if (others.length !== sentinelCount - 1) return `${sentinel.port}: knows ${others.length} of ${sentinelCount - 1} other sentinels`;
      }
      return undefined;
    });
  } catch (err) {
    const tails = [...servers, ...sentinels]
      .map((p) => [p.port, p.output().trim()] as const)
      .filter(([, out]) => out && !(err instanceof Error && err.message.includes(out)))
      .map(([port, out]) => `\n[${port}] ${out}`)
      .join("");
    await stopAll();
    if (tails && err instanceof Error) err.message += tails;
    throw err;
  }

  const masterFrom = async (sentinel: RedisProcess) => {
    const reply = await redisCommand(sentinelAt(sentinel.port), ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName]);
    if (!Array.isArray(reply) || typeof reply[0] !== "string" || typeof reply[1] !== "string") throw new Error(`sentinel ${sentinel.port} does not know ${masterName}`);
    return { host: reply[0], port: Number(reply[1]) };
  };
  const master = async () => {
    let last: unknown;
    for (const sentinel of sentinels.filter((s) => s.alive())) {
      try {
        return await masterFrom(sentinel);
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no sentinel answered for ${masterName}${last ? `: ${String(last)}` : ""}`);
  };

  let stopped: Promise<void> | undefined;
  return {
    sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`),
    masterName,
    ...(clientTls ? { tls: clientTls } : {}),
    master,
    async killMaster() {
      const { port } = await master();
      const server = servers.find((s) => s.port === port);
      if (!server?.alive()) throw new Error(`the sentinels' master 127.0.0.1:${port} is not a live server of this setup`);
      await server.kill();
      return port;
    },
    async waitFailover(oldPort, timeoutMs = 30_000) {
      const started = Date.now();
      let problem: string | undefined;
      for (;;) {
        try {
          // Every live sentinel must have switched, whichever one a client asks.
          const ports = new Set((await Promise.all(sentinels.filter((s) => s.alive()).map(masterFrom))).map((m) => m.port));
          const [port] = ports;
          if (ports.size !== 1 || port === undefined) problem = `sentinels disagree: ${[...ports].join(", ")}`;
          else if (port === oldPort) problem = `sentinels still report ${oldPort}`;
          else {
            const role = await redisCommand(serverAt(port), ["ROLE"]);
            if (Array.isArray(role) && role[0] === "master") return Date.now() - started;
            problem = `${port} answers ROLE ${formatReply(Array.isArray(role) ? (role[0] ?? null) : role)}`;
          }
        } catch (err) {
          problem = String(err);
        }
        if (Date.now() - started > timeoutMs) throw new Error(`no failover away from ${oldPort} within ${timeoutMs} ms: ${problem}`);
        await sleep(50);
      }
    },
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
  };
}

/** Polls `check` (which returns what is still missing, or undefined) for up to 30 s. */
async function settle(what: string, check: () => Promise<string | undefined>): Promise<void> {
  const started = Date.now();
  for (;;) {
    let problem: string | undefined;
    try {
      problem = await check();
    } catch (err) {
      problem = String(err);
    }
    if (problem === undefined) return;
    if (Date.now() - started > 30_000) throw new Error(`timed out after 30 s waiting for ${what}: ${problem}`);
    await sleep(50);
  }
}

/** A flat [key, value, key, value, ...] reply (SENTINEL MASTER and friends) as a record. */
function fields(reply: RespValue): Record<string, string> {
  const record: Record<string, string> = {};
  if (!Array.isArray(reply)) return record;
  for (let i = 0; i + 1 < reply.length; i += 2) record[String(reply[i])] = formatReply(reply[i + 1] ?? null);
  return record;
}
