/*
 * @vmcp-keepalive/shared — what a vMCP imports, and the contract both programs share: queue and
 * key names, ids, the lifecycle-message and event schemas, the Redis key layout and its field
 * names, the lock primitive, and the vMCP client library. Importing it loads bullmq, ioredis,
 * redlock and zod — never the MCP SDK, prom-client, pino or a YAML parser (a test holds it so).
 */

// The vMCP client library.
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
  type SessionBackend,
  type SessionOptions,
} from "./client/vmcp-client.js";
export { createSessionPublisher, SESSION_MESSAGE_JOB_OPTIONS, type SessionPublisher, type SessionPublisherOptions, type SessionTransport, type RegisterOptions } from "./client/session-publisher.js";
export { SILENT_LOGGER, type ClientLogger } from "./logger.js";

// Names, ids and schemas of the contract (docs/contract.md).
export * from "./names.js";
export { IdSchema, describeIssues, formatIssuePath, type IssueFormat } from "./validation.js";
export {
  SessionMessageSchema,
  SessionRegisteredSchema,
  SessionTouchedSchema,
  SessionEndedSchema,
  SessionBackendReinitializedSchema,
  SessionCredentialsUpdatedSchema,
  BackendRegistrationSchema,
  sessionMessageJsonSchema,
  type SessionMessage,
  type SessionMessageInput,
  type SessionRegistered,
  type SessionTouched,
  type SessionEnded,
  type SessionBackendReinitialized,
  type SessionCredentialsUpdated,
  type BackendRegistration,
} from "./messages/schema.js";
export { contractJsonSchemas, renderContractJson } from "./messages/json-schemas.js";
export { contractExamples, SESSION_MESSAGE_EXAMPLES, VMCP_EVENT_EXAMPLES, type ContractExamples } from "./messages/contract-examples.js";
export { parseSessionMessage, REJECTION_REASONS, type RejectionReason, type ParseResult } from "./messages/parse.js";
export {
  VmcpEventSchema,
  BackendSessionExpiredSchema,
  BreakerOpenedSchema,
  BreakerClosedSchema,
  CredentialsExpiredSchema,
  CredentialsExpiringSchema,
  BackendUnauthorizedSchema,
  createVmcpEventPublisher,
  vmcpEventJsonSchema,
  VMCP_EVENT_JOB_OPTIONS,
  EVENTS_STREAM_MAX_LEN,
  type VmcpEventStreamOptions,
  type VmcpEvent,
  type VmcpEventType,
  type VmcpEventPublisher,
} from "./events/vmcp-events.js";
export { readVmcpEvent, VmcpEventReaderSchema, type VmcpEventRead } from "./events/read-vmcp-event.js";
export { FAILURE_REASONS, SKIP_REASONS, OFF_REASONS, CREDENTIAL_OFF_REASONS, type FailureReason, type SkipReason, type OffReason, type AutoDisabledReason } from "./errors/reasons.js";
export { KEEPALIVE_JOB_OPTIONS, EVENTS_MAX_LEN, queueOptions } from "./queues.js";

// Redis: connections, key layout, stored state and its field names, scripts, the lock.
export {
  createRedis,
  closeRedis,
  duplicateRedis,
  whenReady,
  describeRedisTarget,
  parseHostPort,
  masterNodes,
  scanKeys,
  type RedisRole,
  type RedisConnection,
  type RedisTarget,
  type RedisTls,
} from "./redis/connection.js";
export {
  createKeys,
  keyLayout,
  shardOfSession,
  shardTag,
  CLUSTER_SLOTS,
  DEFAULT_CLUSTER_SHARDS,
  MAX_SHARDS,
  type Keys,
  type KeyLayoutOptions,
  type KeyPatterns,
  type QueueLocation,
} from "./redis/keys.js";
export { hashSlot } from "./redis/hash-slot.js";
export { REDIS_SERVER_SETTINGS, redisServerSettingsArgs } from "./redis/server-settings.js";
export { redisErrorCause } from "./redis/redis-error-cause.js";
export { LuaScript, loadLuaScript } from "./redis/lua-script.js";
export { decodePair, outcomeLabel, PAIR_FIELDS, type PairState, type PairCredentials, type PairStatus, type KeepaliveOutcome } from "./state/pair-state.js";
export { BACKEND_FIELDS, decodeBackend, readBackendState, type BackendState, type BreakerState, type LearnedMethod, type SwitchReason } from "./state/backend-state.js";
export { reinitializePair, type ReinitializeStateResult } from "./state/reinitialize-pair.js";
export { SESSION_FIELDS } from "./state/session-state.js";
export { createLocker, releaseLock, type Locker, type HeldLock, type TryLockResult } from "./lock/locker.js";
export { closeInOrder, type StopStep } from "./close-in-order.js";
export {
  createCredentialKeyRing,
  SealedCredentialsSchema,
  CredentialHeadersSchema,
  RESERVED_CREDENTIAL_HEADERS,
  type CredentialKey,
  type CredentialKeyRing,
  type OpenResult,
  type SealedCredentials,
  type SessionCredentials,
} from "./credentials/credential-key-ring.js";
