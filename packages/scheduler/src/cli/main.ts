import { ZodError } from "zod";
import { closeRedis, createRedis, createSessionPublisher, describeIssues, describeRedisTarget, redisErrorCause } from "@vmcp-keepalive/shared";
import { createSessionStore } from "../store/session-store.js";
import { exitOnStartupError, findBackend, keysOf, requireRedisTarget, resolveConfig, UsageError } from "@vmcp-keepalive/runtime";
import { aclFileLines } from "./acl-file-lines.js";
import { CLI_USAGE, parseCli } from "./parse-cli.js";
import { formatStatusTable, statusRows } from "./status.js";

const PROGRAM = "vmcp-keepalive";

/** The command-line flag each message field comes from, to name it in an error. */
const FLAG_OF: Record<string, string> = {
  sessionId: "--session",
  sessionTtlMs: "--ttl",
  maxLifetimeMs: "--max-lifetime",
  backends: "--backend",
  protocolVersion: "--protocol-version",
  backendSessionId: "--backend",
};

/** A message the contract's schema refuses is a bad argument: exit 2 naming the flag, not a stack trace. */
async function asUsage<T>(publishing: Promise<T>): Promise<T> {
  try {
    return await publishing;
  } catch (err) {
    if (!(err instanceof ZodError)) throw err;
    const lines = describeIssues(err.issues, { noun: "field", root: "message" }).map((line) => {
      const field = /([A-Za-z]+)(\[\d+\])?(\.[A-Za-z]+)?:/.exec(line);
      const leaf = field?.[3]?.slice(1) ?? field?.[1];
      return leaf && FLAG_OF[leaf] ? `${FLAG_OF[leaf]} (${line})` : line;
    });
    throw new UsageError(lines.join("; "));
  }
}

async function main(): Promise<void> {
  const cmd = parseCli(process.argv.slice(2));
  if (cmd.command === "help") {
    process.stdout.write(`${CLI_USAGE}\n`);
    return;
  }
  const config = resolveConfig(cmd.config, process.env);
  if (cmd.command === "acl") {
    process.stdout.write(`${aclFileLines(config, process.env).join("\n")}\n`);
    return;
  }
  const target = requireRedisTarget(config);
  if (cmd.command === "register") {
    const unknown = cmd.backends.filter((b) => !findBackend(config, b.backendId));
    if (unknown.length > 0) {
      throw new UsageError(`unknown backend ${unknown.map((b) => JSON.stringify(b.backendId)).join(", ")} (configured: ${config.backends.map((b) => b.id).join(", ") || "none"})`);
    }
  }
  const redis = createRedis(target, "client", "vmk-cli", { enableOfflineQueue: false, lazyConnect: true });
  // The connection's own error says why (TLS, authentication); connect() only says it closed.
  let lastError: unknown;
  redis.on("error", (err: unknown) => (lastError = err));
  const keys = keysOf(config);
  try {
    const key = target.mode === "cluster" ? "redis.nodes" : target.mode === "sentinel" ? "redis.sentinels" : "redis.url";
    // One line naming the cause (TLS, authentication, network), never a stack trace.
    const unusable = (err: unknown) => new UsageError(`${key}: cannot reach Redis at ${describeRedisTarget(target)}: ${redisErrorCause(lastError ?? err)}`);
    await redis.connect().catch((err: unknown) => {
      throw unusable(err);
    });
    if (cmd.command === "status") {
      const pairs = await createSessionStore(redis, keys)
        .listPairs()
        .catch((err: unknown) => {
          throw unusable(err);
        });
      process.stdout.write(cmd.json ? `${JSON.stringify(statusRows(pairs), null, 2)}\n` : `${formatStatusTable(pairs)}\n`);
      return;
    }
    const publisher = createSessionPublisher({ connection: redis, queue: keys.sessionsQueue, replicaId: "cli" });
    try {
      if (cmd.command === "register") {
        await asUsage(
          publisher.register(cmd.sessionId, {
            sessionTtlMs: cmd.ttlMs,
            ...(cmd.maxLifetimeMs === undefined ? {} : { maxLifetimeMs: cmd.maxLifetimeMs }),
            backends: cmd.backends.map((b) => ({
              backendId: b.backendId,
              ...(b.backendSessionId === undefined ? {} : { backendSessionId: b.backendSessionId }),
              ...(cmd.protocolVersion === undefined ? {} : { protocolVersion: cmd.protocolVersion }),
            })),
          }),
        );
        process.stdout.write(`published session.registered for ${cmd.sessionId} (${cmd.backends.length} backend${cmd.backends.length > 1 ? "s" : ""})\n`);
      } else if (cmd.command === "touch") {
        await publisher.touch(cmd.sessionId);
        process.stdout.write(`published session.touched for ${cmd.sessionId}\n`);
      } else {
        await publisher.end(cmd.sessionId, "cli");
        process.stdout.write(`published session.ended for ${cmd.sessionId}\n`);
      }
    } finally {
      await publisher.close();
    }
  } finally {
    await closeRedis(redis);
  }
}

main().catch((err: unknown) => exitOnStartupError(PROGRAM, err));
