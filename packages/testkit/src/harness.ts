import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { sleep } from "./wait.js";

/** A fresh key prefix per test: tests share one redis-server and never see each other's keys. */
export function testPrefix(label = "t"): string {
  return `${label}-${randomBytes(5).toString("hex")}`;
}

/** Deletes every key under a prefix (BullMQ's included). */
export async function flushPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, connectionName: "harness" });
  await redis.connect();
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/**
 * Counts Redis connections whose name starts with `vmk-` (every connection our code opens is
 * named). A test that leaves one open after its cleanup fails: leaked connections keep a
 * process alive and hide shutdown bugs.
 */
export async function openVmkConnections(redisUrl: string, filter: (name: string) => boolean = (n) => n.startsWith("vmk-")): Promise<string[]> {
  const redis = new Redis(redisUrl, { lazyConnect: true, connectionName: "harness" });
  await redis.connect();
  try {
    const list = (await redis.client("LIST")) as string;
    return list
      .split("\n")
      .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? "")
      .filter((name) => name && filter(name));
  } finally {
    redis.disconnect();
  }
}

/** Waits up to `timeoutMs` for every named connection matching `filter` to close; throws listing the leaks. */
export async function expectNoLeakedConnections(redisUrl: string, filter?: (name: string) => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await openVmkConnections(redisUrl, filter);
    if (open.length === 0) return;
    if (Date.now() > deadline) throw new Error(`leaked Redis connections after cleanup: ${open.join(", ")}`);
    await sleep(50);
  }
}

/** Where a logger writes, and the JSON lines it wrote (parsed, a live array), for asserting on logs. */
export interface CapturedLines {
  readonly destination: { write(chunk: string): void };
  readonly lines: Record<string, unknown>[];
}

/**
 * A log destination in memory: hand `destination` to the programs' own logger
 * (`createLogger({ name, level, destination })`) and read `lines`.
 */
export function captureLines(): CapturedLines {
  const lines: Record<string, unknown>[] = [];
  const destination = {
    write(chunk: string) {
      for (const line of chunk.split("\n")) if (line.startsWith("{")) lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  };
  return { destination, lines };
}
