import { Queue } from "bullmq";
import { closeRedis, createKeys, createRedis, createSessionPublisher, keyLayout, queueOptions } from "@vmcp-keepalive/shared";
import { openBackendSession, startRedisCluster, type LocalRedisCluster } from "@vmcp-keepalive/testkit";
import { startBackendProcess } from "../backend-process.js";
import { BACKEND_ID, sleep } from "../context.js";
import { PROGRAMS, schedulerNodeFlags, startChild, waitForOutput, writeConfig, type Child } from "../processes.js";

export interface ClusterBenchOptions {
  readonly pairs: number;
  readonly intervalMs: number;
  readonly shards: number;
  readonly workers: number;
  readonly warmupMs: number;
  readonly windowMs: number;
  readonly dir: string;
  readonly log: (m: string) => void;
}

export interface ClusterBenchResult {
  readonly masters: number;
  readonly shards: number;
  readonly pairs: number;
  readonly intervalMs: number;
  readonly workers: number;
  readonly keepalivesPerSecond: number;
  /** Redis CPU (user + sys) per keepalive on each master, µs. */
  readonly redisCpuUsPerKeepalivePerMaster: number[];
  /** Their sum: Redis CPU a keepalive costs over the whole cluster, µs. */
  readonly redisCpuUsPerKeepalive: number;
  /** Share of the pair keys each master holds. */
  readonly pairKeyShares: number[];
  /** Busiest master's Redis CPU ÷ the masters' mean. */
  readonly cpuMaxOverMean: number;
  /** Share of one core the busiest master used in the window. */
  readonly busiestMasterCoreShare: number;
}

async function cpuMicros(cluster: LocalRedisCluster, port: number): Promise<number> {
  const info = await cluster.command(port, "INFO", "cpu");
  const get = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
  return (get("used_cpu_sys") + get("used_cpu_user")) * 1e6;
}

async function countKeys(cluster: LocalRedisCluster, port: number, pattern: string): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const lines = (await cluster.command(port, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000")).split("\n").filter(Boolean);
    cursor = lines[0]!.trim();
    n += lines.length - 1;
  } while (cursor !== "0");
  return n;
}

/**
 * `pnpm bench --cluster`: the programs on a local Redis Cluster (3 masters, 3 replicas, this
 * machine), keepalives sharded over `shards` queues. Registers `pairs` pairs through the
 * scheduler, runs `workers` worker processes, and measures in one window the keepalives/s, each
 * master's Redis CPU per keepalive, and how pair keys and CPU spread over the masters.
 */
export async function runClusterBench(o: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const cluster = await startRedisCluster();
  const backend = await startBackendProcess({ jsonResponse: true });
  const children: Child[] = [];
  const target = { mode: "cluster" as const, nodes: [...cluster.nodes] };
  const prefix = "bench-cl";
  const keys = createKeys(prefix, keyLayout(true, o.shards));
  const admin = createRedis(target, "client", "bench-cluster-admin");
  const publisher = createSessionPublisher({ connection: admin, queue: keys.sessionsQueue, replicaId: "bench" });
  const queues = Array.from({ length: o.shards }, (_, s) => new Queue(keys.keepaliveQueue(s).name, queueOptions(admin, keys.keepaliveQueue(s))));
  try {
    const config = writeConfig(o.dir, "cluster", {
      redis: { mode: "cluster", nodes: target.nodes, prefix },
      // Capacity at saturation: late ticks run at once, as in the throughput phase.
      keepalive: { interval: 300_000, timeout: 3_000, concurrency: 200, shards: o.shards, catch_up: "at_once" },
      log: { level: "info" },
      http: { port: 0 },
      backends: [{ id: BACKEND_ID, url: backend.url, interval: o.intervalMs }],
    });
    const scheduler = startChild("cluster-scheduler", PROGRAMS.scheduler, ["--config", config], schedulerNodeFlags);
    children.push(scheduler);
    const sessions: Awaited<ReturnType<typeof openBackendSession>>[] = [];
    for (let i = 0; i < 50; i++) sessions.push(await openBackendSession(backend.url));
    o.log(`  cluster up (${cluster.nodes.length} nodes); registering ${o.pairs} pairs at ${o.intervalMs} ms over ${o.shards} shards`);
    for (let i = 0; i < o.pairs; i += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, o.pairs - i) }, (_, j) => {
          const s = sessions[(i + j) % sessions.length]!;
          return publisher.register(`cl-${i + j}`, { sessionTtlMs: 3_600_000, backends: [{ backendId: BACKEND_ID, backendSessionId: s.sessionId, protocolVersion: s.protocolVersion }] });
        }),
      );
    }
    for (;;) {
      const n = (await Promise.all(queues.map((q) => q.getJobSchedulersCount()))).reduce((a, b) => a + b, 0);
      if (n >= o.pairs) break;
      await sleep(250);
    }
    for (let w = 0; w < o.workers; w++) {
      const worker = startChild(`cluster-worker-${w}`, PROGRAMS.worker, ["--config", config]);
      children.push(worker);
      await waitForOutput(worker, "worker started");
    }
    await sleep(o.warmupMs);
    const masters = await cluster.masters();
    const cpu0 = await Promise.all(masters.map((m) => cpuMicros(cluster, m.port)));
    const calls0 = await backend.callCount();
    const t0 = Date.now();
    await sleep(o.windowMs);
    const pings = await backend.pingsBetween(calls0);
    const ms = Date.now() - t0;
    const cpu1 = await Promise.all(masters.map((m) => cpuMicros(cluster, m.port)));
    const cpu = masters.map((_, i) => cpu1[i]! - cpu0[i]!);
    const keyCounts = await Promise.all(masters.map((m) => countKeys(cluster, m.port, keys.pairPattern)));
    const totalKeys = keyCounts.reduce((a, b) => a + b, 0);
    const mean = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    return {
      masters: masters.length,
      shards: o.shards,
      pairs: o.pairs,
      intervalMs: o.intervalMs,
      workers: o.workers,
      keepalivesPerSecond: (pings * 1000) / ms,
      redisCpuUsPerKeepalivePerMaster: cpu.map((c) => c / Math.max(1, pings)),
      redisCpuUsPerKeepalive: cpu.reduce((a, b) => a + b, 0) / Math.max(1, pings),
      pairKeyShares: keyCounts.map((k) => k / Math.max(1, totalKeys)),
      cpuMaxOverMean: Math.max(...cpu) / mean,
      busiestMasterCoreShare: Math.max(...cpu) / (ms * 1000),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await Promise.all(queues.map((q) => q.close()));
    await publisher.close();
    await closeRedis(admin);
    await backend.stop();
    await cluster.stop();
  }
}
