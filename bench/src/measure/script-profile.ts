import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { loadLuaScript } from "@vmcp-keepalive/shared";
import { sleep } from "../context.js";

/** One command (a script by its name) in a SLOWLOG window: how often per keepalive and its server time. */
export interface CommandTime {
  /** `evalsha:<script>` (ours: the lua file's name; BullMQ's: its command name), or a plain command. */
  readonly command: string;
  readonly owner: "bullmq" | "ours" | "other";
  readonly callsPerKeepalive: number;
  /** Mean execution time of one call, µs (SLOWLOG: the command itself, no I/O). */
  readonly meanUs: number;
  readonly usPerKeepalive: number;
}

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../../..");

/** SHA1 → name of every script this project and BullMQ run. */
export async function scriptNames(redis: Redis): Promise<Map<string, { name: string; owner: "bullmq" | "ours" }>> {
  const out = new Map<string, { name: string; owner: "bullmq" | "ours" }>();
  for (const pkg of ["worker", "scheduler"]) {
    const dir = join(REPO, "packages", pkg, "lua");
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".lua"))) {
      const script = loadLuaScript(pathToFileURL(`${dir}/`), file);
      out.set(script.sha, { name: script.name, owner: "ours" });
    }
  }
  // BullMQ defines its commands on the connection it is given; ioredis keeps their SHAs.
  const probe = redis.duplicate({ connectionName: "bench-script-names" });
  const queue = new Queue("bench-script-names", { connection: probe, prefix: "bench-script-names" });
  try {
    await queue.waitUntilReady();
    const set = (probe as unknown as { scriptsSet?: Record<string, { sha: string }> }).scriptsSet ?? {};
    for (const [name, script] of Object.entries(set)) out.set(script.sha, { name: name.replace(/:[0-9.]+$/, ""), owner: "bullmq" });
  } finally {
    await queue.close();
    probe.disconnect();
  }
  return out;
}

/**
 * Every command clients send for `ms` (SLOWLOG with a 0 µs threshold; a script's own calls are
 * left out, their time is the script's), grouped by command and, for EVALSHA, by script: where the server's time per keepalive goes, ours against BullMQ's. Like
 * MONITOR it costs Redis throughput, so it runs in its own short window.
 */
export async function profileCommands(redis: Redis, ms: number, keepalives: () => Promise<number>, names: Map<string, { name: string; owner: "bullmq" | "ours" }>): Promise<CommandTime[]> {
  const get = async (key: string) => ((await redis.config("GET", key)) as string[])[1] ?? "";
  const [threshold, maxLen] = [await get("slowlog-log-slower-than"), await get("slowlog-max-len")];
  await redis.config("SET", "slowlog-max-len", "200000");
  await redis.config("SET", "slowlog-log-slower-than", "0");
  await redis.slowlog("RESET");
  const k0 = await keepalives();
  await sleep(ms);
  const k1 = await keepalives();
  await redis.config("SET", "slowlog-log-slower-than", threshold);
  const entries = (await redis.slowlog("GET", -1)) as [number, number, number, string[], string, ...unknown[]][];
  await redis.config("SET", "slowlog-max-len", maxLen);
  await redis.slowlog("RESET");
  const n = Math.max(1, k1 - k0);
  const groups = new Map<string, { owner: CommandTime["owner"]; calls: number; us: number }>();
  for (const [, , us, args, client] of entries) {
    // A script's own redis.call()s are logged too (client "?:0"); their time is inside the script's.
    if (client === "?:0") continue;
    const cmd = String(args[0] ?? "").toLowerCase();
    if (cmd === "slowlog" || cmd === "config" || cmd === "info") continue;
    const script = cmd === "evalsha" ? names.get(String(args[1] ?? "").toLowerCase()) : undefined;
    const key = script ? `evalsha:${script.name}` : cmd === "evalsha" ? "evalsha:(unknown)" : cmd;
    const g = groups.get(key) ?? { owner: script?.owner ?? "other", calls: 0, us: 0 };
    g.calls++;
    g.us += us;
    groups.set(key, g);
  }
  const round = (x: number) => Math.round(x * 100) / 100;
  return [...groups.entries()]
    .map(([command, g]) => ({ command, owner: g.owner, callsPerKeepalive: round(g.calls / n), meanUs: round(g.us / g.calls), usPerKeepalive: round(g.us / n) }))
    .sort((a, b) => b.usPerKeepalive - a.usPerKeepalive);
}
