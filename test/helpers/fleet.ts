import { createKeys, createRedis, createSessionPublisher, closeRedis, keyLayout, type Keys, type RedisConnection, type RedisTarget } from "@vmcp-keepalive/shared";
import { sleep } from "@vmcp-keepalive/testkit";

/**
 * Many pairs on a distributed Redis (Cluster or Sentinel): registers them through
 * `vmcp-sessions` as a vMCP does, then watches every pair's `okAt` (the time of its last
 * successful keepalive, written by the worker) to measure the gaps between two keepalives of
 * each pair. Consecutive distinct `okAt` values are exact keepalive times; sampling more slowly
 * than the pings come can only make a measured gap longer, never shorter.
 */
export interface Fleet {
  readonly keys: Keys;
  readonly redis: RedisConnection;
  readonly pairs: readonly { sessionId: string; backendId: string }[];
  /** Registers every pair (`sessions` sessions × the given backends). */
  register(backendSessionId: (i: number) => string): Promise<void>;
  /** Every pair's okAt now (0 when never). */
  okAt(): Promise<number[]>;
  /**
   * Samples okAt every `everyMs` for `forMs`, or until `until` holds for what was seen so far;
   * per pair the keepalive times seen (distinct okAt values).
   */
  watch(forMs: number, everyMs?: number, until?: (seen: number[][]) => boolean): Promise<number[][]>;
  close(): Promise<void>;
}

export function createFleet(options: { target: RedisTarget; prefix: string; shards?: number; sessions: number; backendIds: readonly string[]; sessionTtlMs?: number }): Fleet {
  const redis = createRedis(options.target, "client", `vmk-fleet@${options.prefix}`);
  const keys = createKeys(options.prefix, keyLayout(options.target.mode === "cluster", options.shards));
  const publisher = createSessionPublisher({ connection: redis, queue: keys.sessionsQueue, replicaId: "fleet" });
  const sessionIds = Array.from({ length: options.sessions }, (_, i) => `fleet-${i}`);
  const pairs = sessionIds.flatMap((sessionId) => options.backendIds.map((backendId) => ({ sessionId, backendId })));

  const okAt = async (): Promise<number[]> => {
    // One pipeline per shard: a Cluster pipeline must stay on one node.
    const byShard = new Map<number, number[]>();
    pairs.forEach((p, i) => {
      const shard = keys.shardOf(p.sessionId);
      byShard.set(shard, [...(byShard.get(shard) ?? []), i]);
    });
    const out = new Array<number>(pairs.length).fill(0);
    await Promise.all(
      [...byShard.values()].map(async (indexes) => {
        const pipe = redis.pipeline();
        for (const i of indexes) pipe.hget(keys.pair(pairs[i]!.sessionId, pairs[i]!.backendId), "okAt");
        const replies = (await pipe.exec()) ?? [];
        replies.forEach(([err, v], j) => {
          if (!err && v) out[indexes[j]!] = Number(v);
        });
      }),
    );
    return out;
  };

  return {
    keys,
    redis,
    pairs,
    async register(backendSessionId) {
      for (let i = 0; i < sessionIds.length; i += 100) {
        await Promise.all(
          sessionIds.slice(i, i + 100).map((sessionId, j) =>
            publisher.register(sessionId, {
              sessionTtlMs: options.sessionTtlMs ?? 600_000,
              backends: options.backendIds.map((backendId) => ({ backendId, backendSessionId: backendSessionId(i + j), protocolVersion: "2025-06-18" })),
            }),
          ),
        );
      }
    },
    okAt,
    async watch(forMs, everyMs = 250, until) {
      const seen = pairs.map(() => [] as number[]);
      const deadline = Date.now() + forMs;
      while (Date.now() < deadline && !until?.(seen)) {
        const started = Date.now();
        try {
          const values = await okAt();
          values.forEach((v, i) => {
            const list = seen[i]!;
            if (v > 0 && list.at(-1) !== v) list.push(v);
          });
        } catch {
          // A failover in progress: the next sample reads again.
        }
        await sleep(Math.max(0, everyMs - (Date.now() - started)));
      }
      return seen;
    },
    async close() {
      await publisher.close();
      await closeRedis(redis);
    },
  };
}

/** The longest gap between two keepalives of one pair, over every pair (from `watch`). */
export function longestGap(times: readonly number[][], from: number, to: number): { worst: number; pair: number } {
  let worst = 0;
  let pair = -1;
  times.forEach((list, i) => {
    // Gaps inside the window, plus the stretch from `from` to the first keepalive and from the last to `to`.
    const inside = list.filter((t) => t >= from && t <= to);
    const points = [from, ...inside, to];
    for (let j = 1; j < points.length; j++) {
      const gap = points[j]! - points[j - 1]!;
      if (gap > worst) {
        worst = gap;
        pair = i;
      }
    }
  });
  return { worst, pair };
}

/** Every gap between two keepalives of one pair longer than `limit` (the window's edges count as in `longestGap`). */
export function gapsOver(times: readonly number[][], from: number, to: number, limit: number): { pair: number; from: number; to: number }[] {
  const out: { pair: number; from: number; to: number }[] = [];
  times.forEach((list, i) => {
    const points = [from, ...list.filter((t) => t >= from && t <= to), to];
    for (let j = 1; j < points.length; j++) if (points[j]! - points[j - 1]! > limit) out.push({ pair: i, from: points[j - 1]!, to: points[j]! });
  });
  return out;
}
