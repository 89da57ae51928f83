import type { Redis } from "ioredis";
import { createKeys, QUEUE_KEEPALIVE, schedulerId } from "@vmcp-keepalive/shared";

/** Bytes per pair of one kind of Redis object, and whose it is. */
export interface MemoryPart {
  readonly what: string;
  readonly owner: "bullmq" | "ours";
  readonly bytesPerPair: number;
}

/**
 * Where a pair's Redis bytes go: `MEMORY USAGE` (SAMPLES 0: exact) of each key a pair owns, for a
 * sample of pairs, and each sorted set's bytes ÷ its entries for the index entries. Sessions here
 * have one backend each, so the session's own keys count once per pair.
 */
export async function memoryBreakdown(redis: Redis, prefix: string, sessionIds: readonly string[], backendId: string): Promise<MemoryPart[]> {
  const keys = createKeys(prefix);
  const q = `${prefix}:${QUEUE_KEEPALIVE}`;
  const usage = async (key: string) => Number((await redis.call("MEMORY", "USAGE", key, "SAMPLES", "0")) ?? 0);
  const mean = async (list: readonly string[]) => (await Promise.all(list.map(usage))).reduce((a, b) => a + b, 0) / Math.max(1, list.length);
  const perEntry = async (key: string) => (await usage(key)) / Math.max(1, await redis.zcard(key));
  const jobKeys: string[] = [];
  for (const sid of sessionIds) {
    const id = schedulerId(sid, backendId);
    const next = await redis.zscore(`${q}:repeat`, id);
    if (next !== null) jobKeys.push(`${q}:repeat:${id}:${next}`);
  }
  return [
    { what: "job scheduler hash", owner: "bullmq", bytesPerPair: await mean(sessionIds.map((s) => `${q}:repeat:${schedulerId(s, backendId)}`)) },
    { what: "pending job hash", owner: "bullmq", bytesPerPair: await mean(jobKeys) },
    { what: "job scheduler index entry (repeat zset)", owner: "bullmq", bytesPerPair: await perEntry(`${q}:repeat`) },
    { what: "delayed index entry (delayed zset)", owner: "bullmq", bytesPerPair: await perEntry(`${q}:delayed`) },
    { what: "pair hash", owner: "ours", bytesPerPair: await mean(sessionIds.map((s) => keys.pair(s, backendId))) },
    { what: "session hash (with its backend fields)", owner: "ours", bytesPerPair: await mean(sessionIds.map((s) => keys.session(s))) },
  ].map((p) => ({ ...p, bytesPerPair: Math.round(p.bytesPerPair) }) as MemoryPart);
}
