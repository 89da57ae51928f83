import { randomBytes } from "node:crypto";
import { createLogger, type Logger } from "../logging/logger.js";
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

/** A JSON logger whose lines tests can read back. */
export function captureLogger(level = "info"): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const logger = createLogger({ name: "test", level, destination: { write: (s: string) => void raw.push(s) } });
  return {
    logger,
    lines: () => raw.flatMap((chunk) => chunk.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)),
  };
}
