import type {} from "vitest";

export { startMcpTestBackend, type McpTestBackend, type McpTestBackendOptions, type RecordedCall, type BackendMode } from "./mcp-test-backend.js";
export { openBackendSession, callToolOnSession, type OpenedSession } from "./mcp-session.js";
export { startEmbeddedRedis, startTlsRedis, freePort, REDIS_INSTALL_HINT, type EmbeddedRedis, type EmbeddedRedisOptions, type TlsRedis, type TlsRedisOptions } from "./embedded-redis.js";
export { makeTestPki, tlsClientOptions, type TestPki, type TestTls, type TestTlsClient, type PemFile } from "./test-pki.js";
export { startRedisCluster, type LocalRedisCluster, type LocalRedisClusterOptions, type RedisClusterNode } from "./redis-cluster.js";
export { startRedisSentinel, type LocalRedisSentinel, type LocalRedisSentinelOptions } from "./redis-sentinel.js";
export { waitFor, sleep } from "./wait.js";
export { startLatencyProxy, startLatencyProxyProcess, type LatencyProxy } from "./latency-proxy.js";
export { testPrefix, flushPrefix, openVmkConnections, expectNoLeakedConnections, captureLines, type CapturedLines } from "./harness.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the run's embedded redis-server (see the global setup). */
    redisUrl: string;
  }
}
