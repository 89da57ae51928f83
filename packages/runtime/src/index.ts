/*
 * @vmcp-keepalive/runtime — what only the two programs (and their admin CLI) need: the config
 * file, the logger, the ops HTTP server, typed events, the program skeleton. A vMCP never imports
 * it; that is why it is a package of its own rather than a part of shared.
 */
export { parseDuration } from "./duration.js";
export { ConfigFileSchema, KeepaliveConfigSchema, BackendSchema, MAX_TIMER_MS, type ConfigFile } from "./config/schema.js";
export { parseConfig, loadConfig, findBackend, ConfigError, ENV_OVERRIDES } from "./config/load.js";
export type { KeepaliveConfig, BackendConfig, KeepaliveMethod } from "./config/types.js";
export { redisTargetOf, requireRedisTarget, lockTargetsOf, keysOf } from "./config/redis-target.js";
export { createLogger, REDACT_PATHS, type Logger } from "./logging/logger.js";
export { TypedEmitter } from "./events/typed-emitter.js";
export { createRedisHealth, type RedisHealth } from "./redis-health.js";
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
export { runProgram, resolveConfig, exitOnStartupError, runUntilSignal, watchedStep, UsageError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, type ProgramSpec, type RunnableService } from "./program.js";
export {
  aclRules,
  aclUserLine,
  aclPasswordVariable,
  ACL_ROLES,
  CONNECTION_COMMANDS,
  CLUSTER_COMMANDS,
  BULLMQ_COMMANDS,
  type AclRole,
  type AclRoleRules,
  type AclKeyGrant,
  type KeyAccess,
  type RedisMode,
} from "./acl/acl-rules.js";
