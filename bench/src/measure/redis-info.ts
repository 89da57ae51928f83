import type { Redis } from "ioredis";

/** One `INFO <section>` reply as key → value. */
export async function redisInfo(redis: Redis, section: string): Promise<Record<string, string>> {
  const text = await redis.info(section);
  const out: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Server CPU (user + sys, main thread and children) in ms, from `INFO cpu`. */
export async function redisCpuMs(redis: Redis): Promise<number> {
  const cpu = await redisInfo(redis, "cpu");
  return (Number(cpu["used_cpu_user"]) + Number(cpu["used_cpu_sys"])) * 1000;
}

/** `used_memory` in bytes, from `INFO memory`. */
export async function usedMemory(redis: Redis): Promise<number> {
  return Number((await redisInfo(redis, "memory"))["used_memory"]);
}

/**
 * Commands executed per command name, from `INFO commandstats` (`cmdstat_evalsha:calls=12,...`).
 * Commands that Lua scripts run with `redis.call` are counted here too, so this is the work the
 * server did, not the round trips a client made (those come from MONITOR, see monitor.ts).
 */
export async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const stats = await redisInfo(redis, "commandstats");
  const out = new Map<string, number>();
  for (const [key, value] of Object.entries(stats)) {
    const calls = /(?:^|,)calls=(\d+)/.exec(value);
    if (key.startsWith("cmdstat_") && calls) out.set(key.slice("cmdstat_".length), Number(calls[1]));
  }
  return out;
}

/** Per-command difference `after - before` (commands with no calls in between left out). */
export function diffCalls(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [cmd, n] of after) {
    const d = n - (before.get(cmd) ?? 0);
    if (d > 0) out.set(cmd, d);
  }
  return out;
}

export function sumCalls(calls: Map<string, number>, exclude: readonly string[] = []): number {
  let total = 0;
  for (const [cmd, n] of calls) if (!exclude.includes(cmd)) total += n;
  return total;
}

/** Calls and server time (µs) per command name, from `INFO commandstats`. A script's own `redis.call`s count under their names and again inside EVALSHA's time. */
export async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const stats = await redisInfo(redis, "commandstats");
  const out = new Map<string, { calls: number; usec: number }>();
  for (const [key, value] of Object.entries(stats)) {
    const calls = /(?:^|,)calls=(\d+)/.exec(value);
    const usec = /(?:^|,)usec=(\d+)/.exec(value);
    if (key.startsWith("cmdstat_") && calls && usec) out.set(key.slice("cmdstat_".length), { calls: Number(calls[1]), usec: Number(usec[1]) });
  }
  return out;
}

/** Per command, calls and server µs per keepalive between two `commandStats` reads, the costliest first. */
export function commandCostPerKeepalive(
  before: Map<string, { calls: number; usec: number }>,
  after: Map<string, { calls: number; usec: number }>,
  keepalives: number,
  top = 12,
): { command: string; callsPerKeepalive: number; usPerKeepalive: number }[] {
  const rows: { command: string; callsPerKeepalive: number; usPerKeepalive: number }[] = [];
  for (const [command, a] of after) {
    const b = before.get(command) ?? { calls: 0, usec: 0 };
    if (a.calls - b.calls <= 0 || command === "info") continue;
    rows.push({ command, callsPerKeepalive: round3((a.calls - b.calls) / keepalives), usPerKeepalive: round3((a.usec - b.usec) / keepalives) });
  }
  return rows.sort((x, y) => y.usPerKeepalive - x.usPerKeepalive).slice(0, top);
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
