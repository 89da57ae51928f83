import { REDIS_SERVER_SETTINGS } from "@vmcp-keepalive/shared";
import { configDocument } from "../config.js";
import { mark, sleep, type BenchContext } from "../context.js";
import { redisCpuMs } from "../measure/redis-info.js";
import { percentile } from "../measure/stats.js";
import { writeConfig } from "../processes.js";
import { registerInProcess } from "../registration.js";
import { applySettings } from "./memory.js";
import { startWorker } from "./throughput.js";

export interface SettingsWindow {
  readonly settings: "default" | "shipped";
  readonly keepalives: number;
  readonly redisCpuUsPerKeepalive: number;
}

export interface SettingsResult {
  readonly pairs: number;
  readonly intervalMs: number;
  /** The settings measured, as shipped, and Redis' defaults for them on this server. */
  readonly shipped: Readonly<Record<string, string>>;
  readonly defaults: Readonly<Record<string, string>>;
  readonly windows: readonly SettingsWindow[];
  /** Medians of each side's windows. */
  readonly defaultRedisCpuUsPerKeepalive: number;
  readonly shippedRedisCpuUsPerKeepalive: number;
  /** Shipped ÷ default Redis CPU per keepalive: the median of each pair of consecutive windows' ratio. */
  readonly redisCpuRatio: number;
}

/**
 * Redis CPU per keepalive with the settings vmcp-keepalive ships (REDIS_SERVER_SETTINGS) against
 * Redis' defaults, on one server at a steady rate: `tlsPairs` pairs every `tlsIntervalMs`, one
 * worker, the settings switched with CONFIG SET between windows. Each window follows a whole
 * interval under its settings, so every pending job (a new hash per keepalive) was written under
 * them. Bytes per pair with the same settings come from the memory and floor phases.
 */
export async function runSettingsCompare(ctx: BenchContext): Promise<SettingsResult> {
  const { sizes } = ctx;
  const defaults: Record<string, string> = {};
  for (const name of Object.keys(REDIS_SERVER_SETTINGS)) defaults[name] = ((await ctx.redis.config("GET", name)) as string[])[1] ?? "";
  await ctx.redis.flushall();
  const worker = await startWorker(ctx, writeConfig(ctx.dir, "settings", configDocument(ctx, "bench-settings", sizes.tlsIntervalMs)), "worker-settings");
  try {
    ctx.log(`  ${sizes.tlsPairs} pairs at ${sizes.tlsIntervalMs} ms; Redis' defaults and the shipped settings in turn`);
    await registerInProcess(ctx, "bench-settings", sizes.tlsPairs, sizes.tlsIntervalMs, "settings");
    const windows: SettingsWindow[] = [];
    for (let w = 0; w < 2 * sizes.settingsRounds; w++) {
      const settings = w % 2 === 0 ? "default" : "shipped";
      await applySettings(ctx, settings === "default" ? defaults : REDIS_SERVER_SETTINGS);
      await sleep(sizes.tlsIntervalMs);
      const b = { at: await mark(ctx.backend), redis: await redisCpuMs(ctx.redis) };
      await sleep(sizes.windowMs);
      const a = { at: await mark(ctx.backend), redis: await redisCpuMs(ctx.redis) };
      const keepalives = await ctx.backend.pingsBetween(b.at.callIndex, a.at.callIndex);
      const window = { settings, keepalives, redisCpuUsPerKeepalive: ((a.redis - b.redis) * 1000) / Math.max(1, keepalives) } as const;
      ctx.log(`  ${settings}: ${window.redisCpuUsPerKeepalive.toFixed(0)} µs Redis CPU per keepalive (${keepalives} keepalives)`);
      windows.push(window);
    }
    const side = (s: SettingsWindow["settings"]) =>
      percentile(
        windows.filter((w) => w.settings === s).map((w) => w.redisCpuUsPerKeepalive),
        50,
      );
    const ratios = Array.from({ length: sizes.settingsRounds }, (_, i) => windows[2 * i + 1]!.redisCpuUsPerKeepalive / windows[2 * i]!.redisCpuUsPerKeepalive);
    return {
      pairs: sizes.tlsPairs,
      intervalMs: sizes.tlsIntervalMs,
      shipped: REDIS_SERVER_SETTINGS,
      defaults,
      windows,
      defaultRedisCpuUsPerKeepalive: side("default"),
      shippedRedisCpuUsPerKeepalive: side("shipped"),
      redisCpuRatio: percentile(ratios, 50),
    };
  } finally {
    await worker.stop();
    await applySettings(ctx, defaults);
    await ctx.backend.clear();
    await ctx.redis.flushall();
  }
}
