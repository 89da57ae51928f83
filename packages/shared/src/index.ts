export * from "./names.js";
export { parseDuration, formatDuration } from "./duration.js";
export { ConfigFileSchema, BackendSchema, type ConfigFile } from "./config/schema.js";
export { parseConfig, loadConfig, findBackend, ConfigError, ENV_OVERRIDES } from "./config/load.js";
export type { KeepaliveConfig, BackendConfig, KeepaliveMethod } from "./config/types.js";
export {
  SessionMessageSchema,
  SessionRegisteredSchema,
  SessionTouchedSchema,
  SessionEndedSchema,
  SessionBackendReinitializedSchema,
  BackendRegistrationSchema,
  sessionMessageJsonSchema,
  type SessionMessage,
  type SessionMessageInput,
  type SessionRegistered,
  type SessionTouched,
  type SessionEnded,
  type SessionBackendReinitialized,
  type BackendRegistration,
} from "./messages/schema.js";
export { contractJsonSchemas, renderJsonSchema } from "./messages/json-schemas.js";
export { parseSessionMessage, REJECTION_REASONS, type RejectionReason, type ParseResult } from "./messages/parse.js";
export { createRedis, closeRedis, whenReady, type RedisRole } from "./redis/connection.js";
export { createKeys, type Keys } from "./redis/keys.js";
export { LuaScript } from "./redis/lua-script.js";
export { startEmbeddedRedis, freePort, REDIS_INSTALL_HINT, type EmbeddedRedis, type EmbeddedRedisOptions } from "./redis/embedded.js";
export { createPairLocker, type PairLocker, type HeldLock, type TryLockResult } from "./lock/pair-lock.js";
export {
  createStateStore,
  DEFAULT_TOMBSTONE_MS,
  type StateStore,
  type PairDecision,
  type ApplyStatus,
  type SessionRecord,
  type RecordResult,
  type ReinitializeStateResult,
  type ReapResult,
} from "./state/state-store.js";
export { decodePair, outcomeLabel, PAIR_FIELDS, type PairState, type PairStatus, type KeepaliveOutcome } from "./state/pair-state.js";
export { decidePair } from "./policy/decide-pair.js";
export {
  FAILURE_REASONS,
  SKIP_REASONS,
  OFF_REASONS,
  isFailureReason,
  type FailureReason,
  type SkipReason,
  type OffReason,
  type AutoDisabledReason,
} from "./errors/reasons.js";
export { callMcp, KEEPALIVE_ID_PREFIX, type CallMcpOptions, type McpTarget, type McpRequest, type McpCallResult } from "./protocol/mcp-call.js";
export { createKeepAliveFetch, type FetchLike, type KeepAliveFetch, type KeepAliveFetchOptions } from "./protocol/keep-alive-fetch.js";
export { classifyError, classifyHttpStatus, classifyRpcError, CallTimeoutError, type Classified } from "./protocol/classify.js";
export { TypedEmitter } from "./events/typed-emitter.js";
export type { KeepaliveEventMap, RegistrationEventMap, CallMethod } from "./events/keepalive-events.js";
export { createKeepaliveMetrics, attachKeepaliveMetrics, LATENCY_BUCKETS_MS, type KeepaliveMetrics } from "./metrics/keepalive-metrics.js";
export { createLogger, REDACT_PATHS, type Logger } from "./logging/logger.js";
export {
  createVmcpClient,
  type VmcpClient,
  type VmcpClientOptions,
  type PublishResult,
  type ReinitializeResult,
  type ReinitializeLock,
  type ReinitializeState,
  type ReinitializedBackend,
  type VmcpEventHandler,
} from "./registry/vmcp-client.js";
export { createSessionPublisher, SESSION_MESSAGE_JOB_OPTIONS, type SessionPublisher, type RegisterOptions } from "./registry/session-publisher.js";
export { KEEPALIVE_JOB_OPTIONS, EVENTS_MAX_LEN, queueOptions, type KeepaliveJobData } from "./queues.js";
export { resolveConfig, exitOnStartupError, runUntilSignal, UsageError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, type RunnableService } from "./process/run-process.js";
export {
  VmcpEventSchema,
  BackendSessionExpiredSchema,
  BreakerOpenedSchema,
  BreakerClosedSchema,
  createVmcpEventPublisher,
  vmcpEventJsonSchema,
  VMCP_EVENT_JOB_OPTIONS,
  type VmcpEvent,
  type VmcpEventType,
  type VmcpEventPublisher,
} from "./events/vmcp-events.js";
export * from "./breaker/index.js";
export {
  startOpsHttpServer,
  ensureDefaultMetrics,
  isLoopbackHost,
  withTimeout,
  redisAnswers,
  httpListenFor,
  type OpsHttpServer,
  type OpsHttpServerOptions,
  type Readiness,
  type MountedHandler,
} from "./http/ops-http-server.js";
