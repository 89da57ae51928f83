/**
 * `pnpm bench` — what a keepalive costs, how flat the load is, how far it scales
 * (docs/benchmarks.md). Everything runs on this machine against a dedicated embedded
 * redis-server and an MCP backend built with the SDK, side by side in one run, so machine noise
 * largely cancels in the ratios. Prints a table (every figure next to its goal) and writes JSON.
 *
 *   node bench/dist/run.js [--smoke] [--sse] [--out FILE]
 *
 * --smoke (or BENCH_SMOKE=1): tiny sizes, for CI (about a minute); the figures are not meaningful.
 * --sse: the backend answers POSTs with SSE streams (the SDK's default) instead of JSON bodies.
 * --profile-throughput: only the saturation run (a development aid for profiling the worker).
 * --only-flatness, --only-refresh, --only-memory, --only-credentials, --only-registration, --only-tls,
 * --only-floor, --only-settings: only that phase (development aids).
 * --compare-worker PATH: only worker CPU per keepalive of this checkout's worker against the
 *   worker entry at PATH (another build, e.g. a `git worktree` of an earlier commit), in
 *   alternating rounds at saturation, with the ratio (docs/benchmarks.md, "Comparing two codes").
 * --cluster: instead of the phases above, the programs on a local Redis Cluster (3 masters,
 *   3 replicas, 16 shards): keepalives/s, Redis CPU per keepalive on each master, the spread of
 *   pair keys and CPU over the masters, and the capacity per master (docs/benchmarks.md).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { closeRedis, createRedis } from "@vmcp-keepalive/shared";
import { startEmbeddedRedis, type EmbeddedRedis } from "@vmcp-keepalive/testkit";
import { openBenchBackend, type BenchBackend } from "./backend-process.js";
import { FULL, SMOKE, type BenchContext } from "./context.js";
import { runClusterBench } from "./phases/cluster.js";
import { runCredentialsCompare } from "./phases/credentials.js";
import type { CommandTime } from "./measure/script-profile.js";
import { runFlatness } from "./phases/flatness.js";
import { runFloor, type FloorResult } from "./phases/floor.js";
import { runMemory } from "./phases/memory.js";
import { runInProcessTimers, runPlainLoop } from "./phases/plain.js";
import { runRefresh } from "./phases/refresh.js";
import { runSettingsCompare } from "./phases/settings.js";
import { runRegistrationTransports } from "./phases/registration-transports.js";
import { runThroughput } from "./phases/throughput.js";
import { runTlsCompare, type TlsCompareResult } from "./phases/tls.js";
import { runTraffic } from "./phases/traffic.js";
import { runWorkerCompare } from "./phases/worker-compare.js";
import { killAll, tempDir, workerNodeFlags } from "./processes.js";
import { figure, formatTable, type Figure } from "./report.js";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function machine(redisVersion: string) {
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync("nproc", { encoding: "utf8" }).trim()) || nproc;
  } catch {}
  return {
    nproc,
    cpuModel: cpus()[0]?.model ?? "unknown",
    totalMemBytes: totalmem(),
    freeMemBytes: freemem(),
    loadavg: loadavg(),
    node: process.version,
    redis: redisVersion,
    platform: `${process.platform} ${process.arch}`,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      smoke: { type: "boolean" },
      sse: { type: "boolean" },
      out: { type: "string" },
      "profile-throughput": { type: "boolean" },
      "only-flatness": { type: "boolean" },
      "only-refresh": { type: "boolean" },
      "only-memory": { type: "boolean" },
      "only-registration": { type: "boolean" },
      "only-credentials": { type: "boolean" },
      "only-tls": { type: "boolean" },
      "only-floor": { type: "boolean" },
      "only-settings": { type: "boolean" },
      "compare-worker": { type: "string" },
      cluster: { type: "boolean" },
    },
    strict: true,
  });
  const smoke = values.smoke === true || process.env["BENCH_SMOKE"] === "1";
  const sizes = smoke ? SMOKE : FULL;
  const out = resolve(values.out ?? join(REPO_ROOT, "bench-results", smoke ? "smoke.json" : "latest.json"));
  const started = Date.now();
  const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${m}\n`);

  if (values.cluster) {
    await runClusterMain(smoke, values.out, log, started);
    return;
  }
  let redisServer: EmbeddedRedis | undefined;
  let backend: BenchBackend | undefined;
  let ctx: BenchContext | undefined;
  cleanup = async () => {
    await killAll();
    await backend?.stop();
    await redisServer?.stop();
  };
  try {
    redisServer = await startEmbeddedRedis();
    const redis = createRedis(redisServer.url, "client", "bench-admin");
    const redisVersion = execFileSync("redis-server", ["--version"], { encoding: "utf8" }).trim();
    const responseMode = values.sse ? "sse" : "json";
    const dir = tempDir();
    // A fresh backend process (and sessions) for every phase that calls it, as Redis is flushed
    // between phases: the SDK server retains about 5 KB per request on a long-lived session, so
    // one backend across all phases would grow to hundreds of MB and its major GCs would stall it
    // in the middle of the flatness phase — a stall of the fixture, charged to the system's lag
    // (docs/benchmarks.md, "How a run is set up").
    const freshBackend = async (): Promise<BenchContext> => {
      await backend?.stop();
      backend = undefined;
      const opened = await openBenchBackend(responseMode === "json", sizes.backendSessions);
      backend = opened.backend;
      return { sizes, redisUrl: redisServer!.url, redis, backend, jsonResponse: responseMode === "json", sessions: opened.sessions, dir, log };
    };
    ctx = await freshBackend();
    log(`mode ${sizes.mode}, backend answers ${responseMode}, redis ${redisServer.url}`);

    if (values["profile-throughput"]) {
      // Development aid: only the saturation run, workers profiled (--cpu-prof) into the temp dir.
      workerNodeFlags.push("--cpu-prof", `--cpu-prof-dir=${ctx.dir}`);
      log(`worker CPU profiles go to ${ctx.dir}`);
      const tp = await runThroughput(ctx);
      process.stdout.write(`${JSON.stringify({ oneWorker: tp.oneWorker, roundTrips: tp.roundTripsPerKeepalive, monitor: tp.monitor }, null, 2)}\n`);
      return;
    }
    if (values["only-refresh"]) {
      // Development aid: only the soft-state refresh phase.
      const refresh = await runRefresh(ctx);
      process.stdout.write(`${JSON.stringify(refresh, null, 1)}\n`);
      return;
    }
    if (values["only-memory"]) {
      // Development aid: only the memory and registration phase (bytes per pair, their breakdown, registration rates).
      const mem = await runMemory(ctx);
      process.stdout.write(`${JSON.stringify(mem, null, 1)}\n`);
      return;
    }
    if (values["only-registration"]) {
      // Development aid: only registration through the queue and through the ingress stream.
      const reg = await runRegistrationTransports(ctx);
      process.stdout.write(`${JSON.stringify(reg, null, 1)}\n`);
      process.stdout.write(
        `registration of ${reg.pairs} pairs × ${reg.rounds.length / 2} rounds each: queue ${Math.round(reg.queuePairsPerSecond)}/s, stream ${Math.round(reg.streamPairsPerSecond)}/s (goal ≥ 5,000/s through the stream)\n`,
      );
      return;
    }
    if (values["only-credentials"]) {
      // Development aid: only the session credentials phase.
      const cred = await runCredentialsCompare(ctx);
      process.stdout.write(`${JSON.stringify(cred, null, 1)}\n`);
      return;
    }
    if (values["only-tls"]) {
      // Development aid: only TLS against plain TCP.
      const tls = await runTlsCompare(ctx);
      process.stdout.write(`${JSON.stringify(tls, null, 1)}\n`);
      process.stdout.write(`${tlsSummary(tls)}\n`);
      return;
    }
    if (values["only-floor"]) {
      // Development aid: only plain BullMQ's floor.
      const floor = await runFloor(ctx);
      process.stdout.write(`${JSON.stringify(floor, null, 1)}\n${floorSummary(floor)}\n`);
      return;
    }
    if (values["only-settings"]) {
      // Development aid: only the shipped Redis settings against Redis' defaults.
      const settings = await runSettingsCompare(ctx);
      process.stdout.write(`${JSON.stringify(settings, null, 1)}\n`);
      return;
    }
    if (values["compare-worker"]) {
      const cmp = await runWorkerCompare(ctx, resolve(values["compare-worker"]));
      process.stdout.write(`${JSON.stringify(cmp, null, 1)}\n`);
      process.stdout.write(
        `worker CPU per keepalive at saturation (median of ${cmp.rounds.length / 2} rounds each): baseline ${(cmp.baseline.cpuMsPerKeepalive * 1000).toFixed(0)} µs, current ${(cmp.current.cpuMsPerKeepalive * 1000).toFixed(0)} µs, current ÷ baseline ${cmp.cpuRatio.toFixed(3)} (goal ≤ 1.10)\n`,
      );
      return;
    }
    if (values["only-flatness"]) {
      // Development aid: only the flatness/lag phase, with its per-second shapes.
      const flat = await runFlatness(ctx);
      process.stdout.write(`${JSON.stringify(flat, null, 1)}\n`);
      return;
    }
    log("plain SDK ping loop, 1 process");
    const plain1 = await runPlainLoop(ctx, 1);
    log("plain SDK ping loop, 2 processes");
    const plain2 = await runPlainLoop((ctx = await freshBackend()), 2);
    log("in-process design: one timer per pair");
    const inProcess = await runInProcessTimers((ctx = await freshBackend()));
    log("end to end at saturation: 1 then 2 worker processes");
    const tp = await runThroughput((ctx = await freshBackend()));
    log("session credentials against a static header, alternating rounds at saturation");
    const cred = await runCredentialsCompare((ctx = await freshBackend()));
    log("TLS against plain TCP, side by side at a steady rate");
    const tlsCmp = await runTlsCompare((ctx = await freshBackend()));
    log("the shipped Redis settings against Redis' defaults, in turn at a steady rate");
    const settings = await runSettingsCompare((ctx = await freshBackend()));
    log("memory and registration");
    const mem = await runMemory(ctx);
    log("registration: queue and ingress stream side by side");
    const reg = await runRegistrationTransports(ctx);
    log("soft-state refresh");
    const refresh = await runRefresh(ctx);
    log("traffic-aware keepalive");
    const traffic = await runTraffic((ctx = await freshBackend()));
    log("flatness and lag");
    const flat = await runFlatness((ctx = await freshBackend()));
    log("plain BullMQ on the same job schedulers: the floor");
    const floor = await runFloor(ctx);

    const redisCpuMs = Math.max(tp.redisCpuMsPerKeepalive, 1e-9);
    const perCore = 1000 / redisCpuMs;
    const tlsRate = Math.round((sizes.tlsPairs * 1000) / sizes.tlsIntervalMs);
    const figures: Figure[] = [
      figure("throughput.plain_1proc_pings_per_s", "plain SDK ping loop, 1 process", "pings/s", plain1.perSecond),
      figure("throughput.e2e_1worker_per_s", "end to end, 1 worker process", "keepalives/s", tp.oneWorker.perSecond),
      figure("throughput.ratio_1worker", "end to end ÷ plain, 1 process", "", tp.oneWorker.perSecond / plain1.perSecond, { op: ">=", value: 0.9 }),
      figure("throughput.plain_2proc_pings_per_s", "plain SDK ping loop, 2 processes", "pings/s", plain2.perSecond),
      figure("throughput.e2e_2workers_per_s", "end to end, 2 worker processes", "keepalives/s", tp.twoWorkers.perSecond),
      figure("throughput.ratio_2workers", "end to end ÷ plain, 2 processes", "", tp.twoWorkers.perSecond / plain2.perSecond, { op: ">=", value: 0.8 }),
      figure("cpu.plain_ms_per_ping", "plain loop CPU per ping", "ms", plain1.cpuMsPer),
      figure("cpu.worker_ms_per_keepalive", "worker CPU per keepalive (saturated)", "ms", tp.oneWorker.cpuMsPer),
      figure("cpu.ratio", "worker CPU ÷ plain CPU", "", tp.oneWorker.cpuMsPer / plain1.cpuMsPer, { op: "<=", value: 1.3 }),
      figure("cpu.worker_ms_per_keepalive_static_header", "worker CPU per keepalive, a static 1 KB header (saturated, median of 6 windows)", "ms", cred.static.cpuMsPerKeepalive),
      figure("cpu.worker_ms_per_keepalive_session_credentials", "worker CPU per keepalive, each pair's sealed 1 KB token (same phase)", "ms", cred.session.cpuMsPerKeepalive),
      figure("cpu.session_credentials_ratio", "session credentials ÷ static header, worker CPU", "", cred.cpuRatio, { op: "<=", value: 1.1 }),
      figure("cpu.session_credentials_open_us", "of which opening one pair's credentials (in-process)", "µs", cred.openUs),
      figure("tls.worker_ms_per_keepalive_plain", `worker CPU per keepalive, plain TCP (${tlsRate}/s per server, steady)`, "ms", tlsCmp.plain.workerCpuMsPerKeepalive),
      figure("tls.worker_ms_per_keepalive_tls", "worker CPU per keepalive, TLS with client certificates (same windows)", "ms", tlsCmp.tls.workerCpuMsPerKeepalive),
      figure("tls.worker_cpu_ratio", "TLS ÷ plain TCP, worker CPU", "", tlsCmp.workerCpuRatio),
      figure("tls.redis_us_per_keepalive_plain", "Redis CPU per keepalive, plain TCP (same windows)", "µs", tlsCmp.plain.redisCpuUsPerKeepalive),
      figure("tls.redis_us_per_keepalive_tls", "Redis CPU per keepalive, TLS with client certificates (same windows)", "µs", tlsCmp.tls.redisCpuUsPerKeepalive),
      figure("tls.redis_cpu_ratio", "TLS ÷ plain TCP, Redis CPU", "", tlsCmp.redisCpuRatio),
      figure("cpu.in_process_ms_per_ping", `in-process timers CPU per ping (${Math.round(inProcess.perSecond)}/s)`, "ms", inProcess.cpuMsPer),
      figure("cpu.worker_ms_per_keepalive_steady", `worker CPU per keepalive (${Math.round(flat.steady.meanPerSecond)}/s)`, "ms", flat.workerCpuMsPerKeepalive),
      figure("cpu.ratio_steady_vs_in_process", "worker ÷ in-process (at the rates above)", "", flat.workerCpuMsPerKeepalive / inProcess.cpuMsPer),
      figure("redis.round_trips_per_keepalive", "Redis round trips per keepalive (saturated)", "", tp.roundTripsPerKeepalive, { op: "<=", value: 6 }),
      figure("redis.round_trips_per_keepalive_steady", "Redis round trips per keepalive (steady)", "", flat.roundTripsPerKeepalive, { op: "<=", value: 6 }),
      figure("redis.server_commands_per_keepalive", "Redis commands run per keepalive (incl. in scripts)", "", tp.serverCommandsPerKeepalive),
      figure("redis.cpu_us_per_keepalive", "Redis CPU per keepalive (saturated)", "µs", tp.redisCpuMsPerKeepalive * 1000),
      figure("redis.cpu_us_per_keepalive_steady", "Redis CPU per keepalive (steady)", "µs", flat.redisCpuMsPerKeepalive * 1000, { op: "<=", value: 250 }),
      figure("redis.script_us_per_keepalive_ours_steady", "of which our scripts (SLOWLOG, steady)", "µs", ownerUs(flat.steadyProfile, "ours")),
      figure(
        "redis.script_us_per_keepalive_bullmq_steady",
        "of which the rest: BullMQ's scripts, plain commands (SLOWLOG, steady)",
        "µs",
        ownerUs(flat.steadyProfile, "bullmq") + ownerUs(flat.steadyProfile, "other"),
      ),
      figure("floor.redis_cpu_us_per_job_steady", `plain BullMQ: Redis CPU per job (${Math.round(floor.steady.perSecond)}/s)`, "µs", floor.steady.redisCpuUsPerJob),
      figure("floor.redis_cpu_ratio_steady", "Redis CPU per keepalive ÷ plain BullMQ's per job (steady)", "", (flat.redisCpuMsPerKeepalive * 1000) / floor.steady.redisCpuUsPerJob, {
        op: "<=",
        value: 1.5,
      }),
      figure("floor.redis_cpu_us_per_job_saturated", `plain BullMQ: Redis CPU per job (saturated, ${Math.round(floor.saturated.perSecond)}/s)`, "µs", floor.saturated.redisCpuUsPerJob),
      figure("floor.redis_cpu_ratio_saturated", "Redis CPU per keepalive ÷ plain BullMQ's per job (saturated)", "", (tp.redisCpuMsPerKeepalive * 1000) / floor.saturated.redisCpuUsPerJob),
      figure("redis.keepalives_per_s_per_core", "keepalives/s one Redis core serves", "/s", perCore),
      figure("redis.pairs_per_core_at_5min", "pairs one Redis core serves at a 5 min interval", "pairs", perCore * 300),
      figure("memory.bytes_per_pair_small", `Redis bytes per pair at ${sizes.memoryPairsSmall.toLocaleString("en-US")} (via scheduler)`, "B", mem.bytesPerPairSmall, { op: "<=", value: 1500 }),
      figure("memory.bytes_per_pair_large", `Redis bytes per pair at ${sizes.memoryPairsLarge.toLocaleString("en-US")} (in-process)`, "B", mem.bytesPerPairLarge, { op: "<=", value: 1500 }),
      figure("memory.bullmq_bytes_per_pair", "of which BullMQ's (job scheduler, pending job, their index entries)", "B", mem.bytesPerPairLarge - mem.ourBytesPerPairLarge),
      figure("memory.our_bytes_per_pair", "of which ours (pair and session hashes)", "B", mem.ourBytesPerPairLarge, { op: "<=", value: 300 }),
      figure("floor.bytes_per_pair", `plain BullMQ: Redis bytes per job scheduler at ${sizes.memoryPairsLarge.toLocaleString("en-US")}`, "B", floor.bytesPerPair),
      figure("floor.bytes_ratio", "Redis bytes per pair ÷ plain BullMQ's (large size)", "", mem.bytesPerPairLarge / floor.bytesPerPair, { op: "<=", value: 1.3 }),
      figure("settings.bytes_per_pair", `Redis bytes per pair, shipped Redis settings (${sizes.memoryPairsSmall.toLocaleString("en-US")}, in-process)`, "B", mem.bytesPerPairShipped),
      figure("settings.floor_bytes_per_pair", "plain BullMQ: bytes per job scheduler, the same settings and size", "B", floor.bytesPerPairShipped),
      figure("settings.bytes_ratio", "Redis bytes per pair ÷ plain BullMQ's, shipped settings", "", mem.bytesPerPairShipped / floor.bytesPerPairShipped),
      figure("settings.redis_cpu_ratio", `Redis CPU per keepalive, shipped settings ÷ Redis' defaults (${Math.round(settings.pairs / (settings.intervalMs / 1000))}/s)`, "", settings.redisCpuRatio, {
        op: "<=",
        value: 1.05,
      }),
      figure("registration.pairs_per_s", "registration, queue → job scheduler", "pairs/s", mem.registrationPairsPerSecond, { op: ">=", value: 5000 }),
      figure("registration.pairs_per_s_with_worker", "registration while a worker runs", "pairs/s", flat.registrationPairsPerSecond),
      figure("registration.in_process_pairs_per_s", "registration in-process (no queue hop)", "pairs/s", mem.inProcessPairsPerSecond),
      figure("registration.queue_pairs_per_s_side_by_side", "registration, queue → job scheduler (beside the stream)", "pairs/s", reg.queuePairsPerSecond),
      figure("registration.stream_pairs_per_s", "registration, ingress stream → job scheduler", "pairs/s", reg.streamPairsPerSecond, { op: ">=", value: 5000 }),
      figure("floor.upserts_per_s", "plain BullMQ: job schedulers upserted per second, in-process", "/s", floor.upsertsPerSecond),
      figure("floor.stream_registration_ratio", "registration through the ingress stream ÷ plain BullMQ's upserts", "", reg.streamPairsPerSecond / floor.upsertsPerSecond),
      figure("refresh.per_s", `refresh of ${refresh.sessions.toLocaleString("en-US")} live sessions, one scheduler`, "msgs/s", refresh.perSecond),
      figure("refresh.redis_cpu_us_per_message", "Redis CPU per refresh message", "µs", refresh.redisCpuUsPerRefresh),
      figure("refresh.scheduler_cpu_us_per_message", "scheduler CPU per refresh message", "µs", refresh.schedulerCpuUsPerRefresh),
      figure(
        "refresh.redis_core_share_100k_10min",
        "Redis core share: 100,000 sessions refreshed every 10 min (6 msgs/session/h)",
        "%",
        (((100_000 * 6) / 3600) * refresh.redisCpuUsPerRefresh) / 10_000,
      ),
      figure("traffic.backend_calls_per_interval_half_busy", `backend calls per interval, half of ${traffic.pairs.toLocaleString("en-US")} pairs busy`, "calls", traffic.callsPerInterval, {
        op: "<=",
        value: Math.round(traffic.pairs * 0.55),
      }),
      figure("flatness.steady_ratio", "busiest ÷ mean second, steady", "", flat.steady.ratio, { op: "<=", value: 1.3 }),
      figure("flatness.steady_lag_p50_ms", "schedule lag p50, steady", "ms", flat.steady.lagP50Ms),
      figure("flatness.steady_lag_p99_ms", "schedule lag p99, steady", "ms", flat.steady.lagP99Ms, { op: "<=", value: 250 }),
      figure("flatness.after_registration_ratio", "busiest ÷ mean second, after mass registration", "", flat.afterRegistration.ratio, { op: "<=", value: 2 }),
      figure("flatness.after_registration_lag_p50_ms", "schedule lag p50, after mass registration", "ms", flat.afterRegistration.lagP50Ms),
      figure("flatness.after_registration_lag_p99_ms", "schedule lag p99, after mass registration", "ms", flat.afterRegistration.lagP99Ms),
      figure("flatness.after_outage_ratio", `busiest ÷ mean second, after a ${Math.round(flat.afterOutage.outageMs / 1000)} s worker outage`, "", flat.afterOutage.ratio, { op: "<=", value: 1.5 }),
      figure("flatness.after_outage_lag_p50_ms", "schedule lag p50, after the outage", "ms", flat.afterOutage.lagP50Ms),
      figure("flatness.after_outage_lag_p99_ms", "schedule lag p99, after the outage", "ms", flat.afterOutage.lagP99Ms),
    ];

    const durationMs = Date.now() - started;
    const result = {
      version: 1,
      mode: sizes.mode,
      startedAt: new Date(started).toISOString(),
      durationMs,
      machine: machine(redisVersion),
      backend: { response: responseMode, sessions: sizes.backendSessions },
      sizes,
      figures: Object.fromEntries(figures.map((f) => [f.key, { label: f.label, value: f.value, unit: f.unit, goal: f.goal, met: f.met }])),
      details: { plain1, plain2, inProcess, throughput: tp, credentials: cred, tls: tlsCmp, settings, memory: mem, registration: reg, flatness: flat, floor },
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`\n${formatTable(figures)}\n\n${sizes.mode} run in ${(durationMs / 1000).toFixed(0)} s; results: ${out}\n`);
  } finally {
    await killAll();
    if (ctx) await closeRedis(ctx.redis);
    await backend?.stop();
    await redisServer?.stop();
  }
}

/** The TLS phase in one line: both sides' worker and Redis CPU per keepalive and the ratios. */
function tlsSummary(r: TlsCompareResult): string {
  const us = (ms: number) => (ms * 1000).toFixed(0);
  return (
    `${r.pairs} pairs at ${r.intervalMs} ms per server, ${r.windows.length} windows (${r.protocol}, ${r.cipher}): ` +
    `worker CPU per keepalive plain ${us(r.plain.workerCpuMsPerKeepalive)} µs, TLS ${us(r.tls.workerCpuMsPerKeepalive)} µs, TLS ÷ plain ${r.workerCpuRatio.toFixed(3)}; ` +
    `Redis CPU per keepalive plain ${r.plain.redisCpuUsPerKeepalive.toFixed(0)} µs, TLS ${r.tls.redisCpuUsPerKeepalive.toFixed(0)} µs, TLS ÷ plain ${r.redisCpuRatio.toFixed(3)}`
  );
}

/** Plain BullMQ's floor in one line. */
function floorSummary(f: FloorResult): string {
  return (
    `plain BullMQ: ${Math.round(f.upsertsPerSecond)} upserts/s, ${Math.round(f.bytesPerPair)} B per job scheduler; ` +
    `Redis CPU per job ${f.steady.redisCpuUsPerJob.toFixed(0)} µs steady (${Math.round(f.steady.perSecond)}/s), ${f.saturated.redisCpuUsPerJob.toFixed(0)} µs saturated (${Math.round(f.saturated.perSecond)}/s)`
  );
}

/** Server µs per keepalive of one owner's commands in a SLOWLOG profile. */
function ownerUs(rows: readonly CommandTime[], owner: CommandTime["owner"]): number {
  return rows.filter((r) => r.owner === owner).reduce((n, r) => n + r.usPerKeepalive, 0);
}

/** `--cluster`: the cluster phase alone, its figures printed and written beside the others. */
async function runClusterMain(smoke: boolean, outArg: string | undefined, log: (m: string) => void, started: number): Promise<void> {
  const out = resolve(outArg ?? join(REPO_ROOT, "bench-results", smoke ? "cluster-smoke.json" : "cluster.json"));
  const dir = tempDir();
  cleanup = () => killAll();
  const r = await runClusterBench({
    pairs: smoke ? 300 : 6_000,
    intervalMs: 1_000,
    shards: 16,
    workers: 2,
    warmupMs: smoke ? 1_000 : 5_000,
    windowMs: smoke ? 2_000 : 15_000,
    dir,
    log,
  });
  const perMasterMean = r.redisCpuUsPerKeepalivePerMaster.reduce((a, b) => a + b, 0) / r.masters;
  const perMasterMax = Math.max(...r.redisCpuUsPerKeepalivePerMaster);
  // A master saturates when the cluster runs 1e6 / (its µs per keepalive) keepalives/s; at a
  // 5-minute interval each pair is 1/300 keepalive/s, shared by the masters.
  const pairsPerMasterAt5min = ((1e6 / perMasterMax) * 300) / r.masters;
  const pct = (x: number) => Math.round(x * 1000) / 10;
  const figures: Figure[] = [
    figure("cluster.keepalives_per_s", `end to end on ${r.masters} masters, ${r.shards} shards, ${r.workers} workers (saturated)`, "keepalives/s", r.keepalivesPerSecond),
    figure("cluster.redis_cpu_us_per_keepalive", "Redis CPU per keepalive, all masters together", "µs", r.redisCpuUsPerKeepalive),
    figure("cluster.redis_cpu_us_per_keepalive_per_master", "Redis CPU per keepalive on each master (mean)", "µs", perMasterMean),
    figure("cluster.cpu_max_over_mean", "busiest master's Redis CPU ÷ the mean", "", r.cpuMaxOverMean, { op: "<=", value: 1.3 }),
    figure("cluster.pair_key_share_min_pct", "smallest share of the pair keys on one master", "%", pct(Math.min(...r.pairKeyShares)), { op: ">=", value: 25 }),
    figure("cluster.pair_key_share_max_pct", "largest share of the pair keys on one master", "%", pct(Math.max(...r.pairKeyShares)), { op: "<=", value: 42 }),
    figure("cluster.busiest_master_core_pct", "busiest master's use of one core in the window", "%", pct(r.busiestMasterCoreShare)),
    figure("cluster.pairs_per_master_at_5min", "pairs per master at a 5 min interval (one full core each)", "pairs", pairsPerMasterAt5min),
  ];
  const durationMs = Date.now() - started;
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ version: 1, mode: smoke ? "smoke" : "full", startedAt: new Date(started).toISOString(), durationMs, machine: machine(execFileSync("redis-server", ["--version"], { encoding: "utf8" }).trim()), figures: Object.fromEntries(figures.map((f) => [f.key, { label: f.label, value: f.value, unit: f.unit, goal: f.goal, met: f.met }])), details: r }, null, 2)}
`,
  );
  process.stdout.write(`
${formatTable(figures)}

per master: pair keys ${r.pairKeyShares.map((s) => `${pct(s)} %`).join(" / ")}, Redis CPU per keepalive ${r.redisCpuUsPerKeepalivePerMaster.map((c) => `${Math.round(c)} µs`).join(" / ")}
cluster run in ${(durationMs / 1000).toFixed(0)} s; results: ${out}
`);
}

// A crash or Ctrl-C must not leave workers, schedulers or redis-server running.
let cleanup: (() => Promise<void>) | undefined;
const abort = (why: string, err?: unknown) => {
  process.stderr.write(`bench ${why}${err ? `: ${(err as Error)?.stack ?? String(err)}` : ""}\n`);
  void Promise.race([cleanup?.(), new Promise((r) => setTimeout(r, 5_000))]).finally(() => process.exit(1));
};
process.once("SIGINT", () => abort("interrupted"));
process.once("SIGTERM", () => abort("terminated"));
process.once("uncaughtException", (err) => abort("crashed", err));

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
