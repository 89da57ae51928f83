import type { TestProject } from "vitest/node";
import { startEmbeddedRedis, type EmbeddedRedis } from "./embedded-redis.js";

let redis: EmbeddedRedis | undefined;

/** One real redis-server per test run; every test uses its own key prefix on it. */
export async function setup(project: TestProject): Promise<void> {
  redis = await startEmbeddedRedis();
  project.provide("redisUrl", redis.url);
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}
