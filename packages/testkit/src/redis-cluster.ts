import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { distinctPorts, formatReply, localServerArgs, redisCommand, redisPipeline, runRedisCli, spawnRedisProcess, type RedisEndpoint, type RedisProcess } from "./redis-process.js";
import { tlsClientOptions, type TestTls, type TestTlsClient } from "./test-pki.js";
import { sleep } from "./wait.js";

export interface RedisClusterNode {
  readonly port: number;
  readonly url: string;
  readonly pid: number;
  readonly dir: string;
}

export interface LocalRedisCluster {
  /** Seed URLs of every node (redis://127.0.0.1:port, rediss:// with `tls`), masters first. */
  readonly nodes: readonly string[];
  /** With the `tls` option: what a client needs (CA, client certificate), as Node's and ioredis' `tls` options. */
  readonly tls?: TestTlsClient;
  /** The node processes, in the order of `nodes`. */
  readonly processes: readonly RedisClusterNode[];
  /** Current masters as seen by CLUSTER NODES (after failovers), with their slot ranges. Masters flagged `fail` or without slots are left out. */
  masters(): Promise<Array<{ port: number; url: string; slots: Array<[number, number]> }>>;
  /** SIGKILLs the node on `port` (it stays dead). */
  kill(port: number): Promise<void>;
  /** Waits until every slot is served by a live master and the cluster reports cluster_state:ok from every live node; returns ms waited. Throws after timeoutMs. */
  waitHealthy(timeoutMs?: number): Promise<number>;
  /** Runs a command on one node via a short-lived raw connection, e.g. for INFO cpu / DBSIZE per master. Arrays come back one element a line. */
  command(port: number, ...args: string[]): Promise<string>;
  /** Stops every node (SIGTERM, SIGKILL after 5 s) and deletes the temp dirs. Idempotent. */
  stop(): Promise<void>;
}

export interface LocalRedisClusterOptions {
  /** Number of masters (redis-cli needs at least 3). @defaultValue 3 */
  masters?: number;
  /** Replicas per master. @defaultValue 1 */
  replicasPerMaster?: number;
  /** cluster-node-timeout: how long a node may be unreachable before it counts as failing. @defaultValue 1000 */
  nodeTimeoutMs?: number;
  /**
   * TLS only, with the test CA: every node listens with TLS alone (no plain port), the cluster bus
   * and replication run over TLS (`tls-cluster yes`, `tls-replication yes`), and the nodes
   * announce their TLS port.
   */
  tls?: TestTls;
}

const CLUSTER_SLOTS = 16_384;

/**
 * Starts a real Redis Cluster on loopback: `masters × (1 + replicasPerMaster)` redis-server
 * processes, joined with `redis-cli --cluster create`. Resolves once every node reports
 * cluster_state:ok and every replica has finished its initial sync. Tuned so that a replica
 * takes over within a few seconds after its master is SIGKILLed. With `tls`, `redis-cli` and the
 * harness's own commands (`command`, `masters`, `waitHealthy`) go over TLS with the client
 * certificate.
 */
export async function startRedisCluster(options: LocalRedisClusterOptions = {}): Promise<LocalRedisCluster> {
  const masterCount = options.masters ?? 3;
  const replicasPerMaster = options.replicasPerMaster ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
  if (!Number.isInteger(masterCount) || masterCount < 3) throw new Error(`a Redis Cluster needs at least 3 masters (got ${masterCount})`);
  if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0) throw new Error(`replicasPerMaster must be a non-negative integer (got ${replicasPerMaster})`);
  const total = masterCount * (1 + replicasPerMaster);
  const clientTls = options.tls ? tlsClientOptions(options.tls.pki) : undefined;
  // How the harness's own commands reach a node.
  const at = (port: number): RedisEndpoint => ({ port, tls: clientTls });
  const scheme = options.tls ? "rediss" : "redis";

  const root = mkdtempSync(join(tmpdir(), "vmk-redis-cluster-"));
  const procs: Array<{ proc: RedisProcess; dir: string }> = [];
  const killed = new Set<number>();
  const stopAll = async () => {
    await Promise.all(procs.map(({ proc }) => proc.stop()));
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const pickPort = distinctPorts();
    for (let i = 0; i < total; i++) {
      const port = await pickPort();
      // The cluster bus defaults to port + 10000, which can fall outside 1..65535 for ephemeral ports: pick it explicitly.
      const busPort = await pickPort();
      const dir = join(root, String(port));
      mkdirSync(dir);
      const args = [
        ...localServerArgs(port, dir, { tls: options.tls }),
        ...(options.tls ? ["--tls-cluster", "yes", "--tls-replication", "yes"] : []),
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        String(busPort),
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        String(nodeTimeoutMs),
        // A replica may take over however long it has been cut off from its master.
        "--cluster-replica-validity-factor",
        "0",
        "--cluster-allow-reads-when-down",
        "no",
        // Start the initial full sync at once instead of waiting 5 s for more replicas.
        "--repl-diskless-sync-delay",
        "0",
      ];
      procs.push({ proc: spawnRedisProcess(args, port, dir, "redis-server", clientTls), dir });
    }
    await Promise.all(procs.map(({ proc }) => proc.ready));

    const cliTls = options.tls ? ["--tls", "--cacert", options.tls.pki.ca.path, "--cert", options.tls.pki.clientCert.path, "--key", options.tls.pki.clientKey.path] : [];
    await runRedisCli(["--cluster", "create", ...procs.map(({ proc }) => `127.0.0.1:${proc.port}`), "--cluster-replicas", String(replicasPerMaster), "--cluster-yes", ...cliTls], 60_000);

    const started = Date.now();
    for (;;) {
      const problem = await startupProblem(
        procs.map(({ proc }) => proc.port),
        masterCount,
        replicasPerMaster,
        at,
      );
      if (problem === undefined) break;
      if (Date.now() - started > 30_000) throw new Error(`Redis Cluster did not settle within 30 s: ${problem}`);
      await sleep(50);
    }
  } catch (err) {
    const tails = procs
      .map(({ proc }) => [proc.port, proc.output().trim()] as const)
      .filter(([, out]) => out && !(err instanceof Error && err.message.includes(out)))
      .map(([port, out]) => `\n[${port}] ${out}`)
      .join("");
    await stopAll();
    if (tails && err instanceof Error) err.message += tails;
    throw err;
  }

  // Order the nodes masters first (by first slot), then the replicas of each master in turn.
  const view = parseClusterNodes(formatReply(await redisCommand(at(procs[0]!.proc.port), ["CLUSTER", "NODES"])));
  const masters = view.filter((n) => n.flags.includes("master")).sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0));
  const ordered = [...masters, ...masters.flatMap((m) => view.filter((n) => n.masterId === m.id))];
  const rank = (port: number) => {
    const i = ordered.findIndex((n) => n.port === port);
    return i < 0 ? ordered.length : i;
  };
  procs.sort((a, b) => rank(a.proc.port) - rank(b.proc.port));

  const processes: RedisClusterNode[] = procs.map(({ proc, dir }) => ({ port: proc.port, url: `${scheme}://127.0.0.1:${proc.port}`, pid: proc.pid, dir }));
  const liveProcs = () => procs.filter(({ proc }) => !killed.has(proc.port) && proc.alive()).map(({ proc }) => proc);

  let stopped: Promise<void> | undefined;
  return {
    nodes: processes.map((p) => p.url),
    ...(clientTls ? { tls: clientTls } : {}),
    processes,
    async masters() {
      let last: unknown;
      for (const proc of liveProcs()) {
        try {
          const nodes = parseClusterNodes(formatReply(await redisCommand(at(proc.port), ["CLUSTER", "NODES"])));
          return nodes
            .filter((n) => n.flags.includes("master") && !n.flags.includes("fail") && n.slots.length > 0)
            .sort((a, b) => (a.slots[0]?.[0] ?? CLUSTER_SLOTS) - (b.slots[0]?.[0] ?? CLUSTER_SLOTS))
            .map((n) => ({ port: n.port, url: `${scheme}://127.0.0.1:${n.port}`, slots: n.slots }));
        } catch (err) {
          last = err;
        }
      }
      throw new Error(`no live cluster node answered CLUSTER NODES${last ? `: ${String(last)}` : ""}`);
    },
    async kill(port) {
      const entry = procs.find(({ proc }) => proc.port === port);
      if (!entry) throw new Error(`no cluster node on port ${port}`);
      killed.add(port);
      await entry.proc.kill();
    },
    async waitHealthy(timeoutMs = 30_000) {
      const started = Date.now();
      for (;;) {
        const live = liveProcs();
        const problem = await healthProblem(
          live.map((p) => p.port),
          new Set(live.map((p) => p.port)),
          at,
        );
        if (problem === undefined) return Date.now() - started;
        if (Date.now() - started > timeoutMs) throw new Error(`Redis Cluster not healthy after ${timeoutMs} ms: ${problem}`);
        await sleep(50);
      }
    },
    async command(port, ...args) {
      return formatReply(await redisCommand(at(port), args));
    },
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
  };
}

/** What still keeps the cluster from being healthy (as waitHealthy means it), or undefined. */
async function healthProblem(ports: readonly number[], livePorts: ReadonlySet<number>, at: (port: number) => RedisEndpoint): Promise<string | undefined> {
  if (ports.length === 0) return "no live nodes";
  const problems = await Promise.all(
    ports.map(async (port) => {
      try {
        const info = formatReply(await redisCommand(at(port), ["CLUSTER", "INFO"]));
        if (!/^cluster_state:ok\r?$/m.test(info)) return `${port}: ${/^cluster_state:\w+/m.exec(info)?.[0] ?? "no cluster_state"}`;
        let covered = 0;
        for (const node of parseClusterNodes(formatReply(await redisCommand(at(port), ["CLUSTER", "NODES"])))) {
          if (!node.flags.includes("master") || node.slots.length === 0) continue;
          if (!livePorts.has(node.port)) return `${port}: slots still assigned to dead master ${node.port}`;
          if (node.flags.some((f) => f === "fail" || f === "fail?")) return `${port}: master ${node.port} flagged ${node.flags.join(",")}`;
          covered += node.slots.reduce((sum, [from, to]) => sum + to - from + 1, 0);
        }
        return covered === CLUSTER_SLOTS ? undefined : `${port}: only ${covered} of ${CLUSTER_SLOTS} slots served`;
      } catch (err) {
        return `${port}: ${String(err)}`;
      }
    }),
  );
  return problems.find((p) => p !== undefined);
}

/** Healthy, plus: every node knows every other one, no handshakes left, every replica in sync. */
async function startupProblem(ports: readonly number[], masterCount: number, replicasPerMaster: number, at: (port: number) => RedisEndpoint): Promise<string | undefined> {
  const health = await healthProblem(ports, new Set(ports), at);
  if (health !== undefined) return health;
  const problems = await Promise.all(
    ports.map(async (port) => {
      try {
        const info = formatReply(await redisCommand(at(port), ["CLUSTER", "INFO"]));
        const known = Number(/^cluster_known_nodes:(\d+)/m.exec(info)?.[1]);
        const size = Number(/^cluster_size:(\d+)/m.exec(info)?.[1]);
        if (known !== ports.length || size !== masterCount) return `${port}: knows ${known} nodes, ${size} masters`;
        const nodes = parseClusterNodes(formatReply(await redisCommand(at(port), ["CLUSTER", "NODES"])));
        const odd = nodes.find((n) => n.linkState !== "connected" || n.flags.some((f) => ["fail", "fail?", "handshake", "noaddr"].includes(f)));
        if (odd) return `${port}: sees ${odd.port} as ${odd.flags.join(",")} (${odd.linkState})`;
        // Roles spread by gossip: until then a node may still see a fresh replica as an empty master.
        const masterIds = new Set(nodes.filter((n) => n.flags.includes("master") && n.slots.length > 0).map((n) => n.id));
        const replicas = nodes.filter((n) => n.flags.includes("slave") && masterIds.has(n.masterId));
        if (masterIds.size !== masterCount || replicas.length !== ports.length - masterCount) return `${port}: sees ${masterIds.size} masters with slots and ${replicas.length} replicas`;
        const replication = formatReply(await redisCommand(at(port), ["INFO", "replication"]));
        if (/^role:slave\r?$/m.test(replication)) {
          if (!/^master_link_status:up\r?$/m.test(replication)) return `${port}: replica link not up yet`;
          if (!/^master_sync_in_progress:0\r?$/m.test(replication)) return `${port}: replica still syncing`;
          return undefined;
        }
        return await replicationStreamProblem(at(port), replicasPerMaster);
      } catch (err) {
        return `${port}: ${String(err)}`;
      }
    }),
  );
  return problems.find((p) => p !== undefined);
}

/**
 * After its initial sync a replica counts as up, but the master holds back the command stream
 * until the replica's first REPLCONF ACK, which can take up to a second: writes made in that window
 * are lost if the master is killed then. A FLUSHALL (harmless on the empty master) followed by WAIT
 * proves that every replica gets and acknowledges the stream.
 */
export async function replicationStreamProblem(to: number | RedisEndpoint, replicas: number): Promise<string | undefined> {
  if (replicas === 0) return undefined;
  const [, acked] = await redisPipeline(
    to,
    [
      ["FLUSHALL", "SYNC"],
      ["WAIT", String(replicas), "1500"],
    ],
    3_000,
  );
  return typeof acked === "number" && acked >= replicas ? undefined : `${typeof to === "number" ? to : to.port}: ${formatReply(acked ?? null)} of ${replicas} replicas acknowledged the stream`;
}

interface ClusterNodeLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string;
  linkState: string;
  slots: Array<[number, number]>;
}

/** Parses CLUSTER NODES output (`<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`). */
function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [id = "", address = "", flags = "", masterId = "-", , , , linkState = "", ...slotFields] = line.split(" ");
      const hostPort = address.split("@")[0] ?? "";
      const slots = slotFields
        .filter((s) => !s.startsWith("[")) // [slot->-importing] / [slot-<-migrating]
        .map((s): [number, number] => {
          const [from, to] = s.split("-");
          return [Number(from), Number(to ?? from)];
        });
      return { id, port: Number(hostPort.slice(hostPort.lastIndexOf(":") + 1)), flags: flags.split(","), masterId, linkState, slots };
    });
}
