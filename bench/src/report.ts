import { round } from "./measure/stats.js";

export interface Goal {
  readonly op: ">=" | "<=";
  readonly value: number;
}

export interface Figure {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  readonly value: number;
  readonly goal: Goal | null;
  /** Goal met; null when the figure has no goal (context for another figure). */
  readonly met: boolean | null;
}

/**
 * Every figure `pnpm bench` reports, in table order. The smoke test checks that a run produces
 * each of these keys with a finite value, so the list and the benchmark cannot drift apart.
 */
export const FIGURE_KEYS = [
  "throughput.plain_1proc_pings_per_s",
  "throughput.e2e_1worker_per_s",
  "throughput.ratio_1worker",
  "throughput.plain_2proc_pings_per_s",
  "throughput.e2e_2workers_per_s",
  "throughput.ratio_2workers",
  "cpu.plain_ms_per_ping",
  "cpu.worker_ms_per_keepalive",
  "cpu.ratio",
  "cpu.worker_ms_per_keepalive_static_header",
  "cpu.worker_ms_per_keepalive_session_credentials",
  "cpu.session_credentials_ratio",
  "cpu.session_credentials_open_us",
  "tls.worker_ms_per_keepalive_plain",
  "tls.worker_ms_per_keepalive_tls",
  "tls.worker_cpu_ratio",
  "tls.redis_us_per_keepalive_plain",
  "tls.redis_us_per_keepalive_tls",
  "tls.redis_cpu_ratio",
  "cpu.in_process_ms_per_ping",
  "cpu.worker_ms_per_keepalive_steady",
  "cpu.ratio_steady_vs_in_process",
  "redis.round_trips_per_keepalive",
  "redis.round_trips_per_keepalive_steady",
  "redis.server_commands_per_keepalive",
  "redis.cpu_us_per_keepalive",
  "redis.cpu_us_per_keepalive_steady",
  "redis.script_us_per_keepalive_ours_steady",
  "redis.script_us_per_keepalive_bullmq_steady",
  "floor.redis_cpu_us_per_job_steady",
  "floor.redis_cpu_ratio_steady",
  "floor.redis_cpu_us_per_job_saturated",
  "floor.redis_cpu_ratio_saturated",
  "redis.keepalives_per_s_per_core",
  "redis.pairs_per_core_at_5min",
  "memory.bytes_per_pair_small",
  "memory.bytes_per_pair_large",
  "memory.bullmq_bytes_per_pair",
  "memory.our_bytes_per_pair",
  "floor.bytes_per_pair",
  "floor.bytes_ratio",
  "settings.bytes_per_pair",
  "settings.floor_bytes_per_pair",
  "settings.bytes_ratio",
  "settings.redis_cpu_ratio",
  "registration.pairs_per_s",
  "registration.pairs_per_s_with_worker",
  "registration.in_process_pairs_per_s",
  "registration.queue_pairs_per_s_side_by_side",
  "registration.stream_pairs_per_s",
  "floor.upserts_per_s",
  "floor.stream_registration_ratio",
  "refresh.per_s",
  "refresh.redis_cpu_us_per_message",
  "refresh.scheduler_cpu_us_per_message",
  "refresh.redis_core_share_100k_10min",
  "traffic.backend_calls_per_interval_half_busy",
  "flatness.steady_ratio",
  "flatness.steady_lag_p50_ms",
  "flatness.steady_lag_p99_ms",
  "flatness.after_registration_ratio",
  "flatness.after_registration_lag_p50_ms",
  "flatness.after_registration_lag_p99_ms",
  "flatness.after_outage_ratio",
  "flatness.after_outage_lag_p50_ms",
  "flatness.after_outage_lag_p99_ms",
] as const;

/** Every figure `pnpm bench --cluster` reports, in table order. */
export const CLUSTER_FIGURE_KEYS = [
  "cluster.keepalives_per_s",
  "cluster.redis_cpu_us_per_keepalive",
  "cluster.redis_cpu_us_per_keepalive_per_master",
  "cluster.cpu_max_over_mean",
  "cluster.pair_key_share_min_pct",
  "cluster.pair_key_share_max_pct",
  "cluster.busiest_master_core_pct",
  "cluster.pairs_per_master_at_5min",
] as const;

export type FigureKey = (typeof FIGURE_KEYS)[number] | (typeof CLUSTER_FIGURE_KEYS)[number];

export function figure(key: FigureKey, label: string, unit: string, value: number, goal: Goal | null = null): Figure {
  const met = goal === null ? null : goal.op === ">=" ? value >= goal.value : value <= goal.value;
  return { key, label, unit, value, goal, met };
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  const r = abs >= 1000 ? Math.round(v) : abs >= 10 ? round(v, 1) : round(v, 3);
  return r.toLocaleString("en-US");
}

/** The table printed at the end of a run: every figure next to its goal. */
export function formatTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => [f.label, `${fmt(f.value)}${f.unit ? ` ${f.unit}` : ""}`, f.goal ? `${f.goal.op} ${fmt(f.goal.value)}` : "", f.met === null ? "" : f.met ? "met" : "MISSED"]);
  const header = ["figure", "measured", "goal", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
