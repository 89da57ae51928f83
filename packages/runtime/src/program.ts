import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "./config/load.js";
import type { KeepaliveConfig } from "./config/types.js";
import { requireRedisTarget } from "./config/redis-target.js";
import { httpListenFor } from "./http/ops-http-server.js";
import { createLogger, type Logger } from "./logging/logger.js";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from "./usage-error.js";

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from "./usage-error.js";

/**
 * Resolves the config path from `--config FILE` or KEEPALIVE_CONFIG and loads it. Throws
 * {@link UsageError} with a message naming the key on a bad or missing file.
 */
export function resolveConfig(configPath: string | undefined, env: NodeJS.ProcessEnv): KeepaliveConfig {
  const path = configPath ?? env["KEEPALIVE_CONFIG"];
  if (!path) throw new UsageError("no config file: pass --config FILE or set KEEPALIVE_CONFIG");
  try {
    return loadConfig(path, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** Prints a fatal start-up error and exits: 2 for usage/config problems, 1 otherwise. */
export function exitOnStartupError(program: string, err: unknown): never {
  const usage = err instanceof UsageError;
  process.stderr.write(`${program}: ${usage ? err.message : ((err as Error)?.stack ?? String(err))}\n`);
  process.exit(usage ? EXIT_USAGE : EXIT_FAILURE);
}

export interface RunnableService {
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface MinimalLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  flush?(): void;
}

/**
 * Runs a long-lived service: starts it; on SIGTERM/SIGINT stops it and exits 0 (1 if stopping
 * failed); a second signal forces exit. Unhandled rejections are logged, never fatal: a backend
 * or Redis problem must not take the process down.
 */
export async function runUntilSignal(
  program: string,
  service: RunnableService,
  log: MinimalLog,
  options: {
    /**
     * Longest a clean stop may take before the process exits 1 anyway: stopping waits for
     * in-flight work and for Redis, and a Redis that is gone must not keep a pod in Terminating
     * until the orchestrator's SIGKILL. @defaultValue 30 s
     */
    stopTimeoutMs?: number;
  } = {},
): Promise<void> {
  const stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.error({ signal }, `${program}: second signal, exiting now`);
      process.exit(EXIT_FAILURE);
    }
    signalled = true;
    log.info({ signal, stopTimeoutMs }, `${program}: shutting down`);
    setTimeout(() => {
      log.error({ stopTimeoutMs }, `${program}: clean stop took too long (Redis unreachable?), exiting now`);
      log.flush?.();
      process.exit(EXIT_FAILURE);
    }, stopTimeoutMs).unref();
    service.stop().then(
      () => {
        log.flush?.();
        process.exit(EXIT_OK);
      },
      (err: unknown) => {
        log.error({ err }, `${program}: error while stopping`);
        log.flush?.();
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  process.on("unhandledRejection", (err) => log.error({ err }, `${program}: unhandled rejection (kept running)`));
  await service.start();
}

/** What a long-running program is: its name, and how to build its service from the config. */
export interface ProgramSpec {
  /** The program's name: its log name and the prefix of its messages. */
  readonly name: "vmcp-keepalive-scheduler" | "vmcp-keepalive-worker";
  /** Which ops HTTP port of the config it listens on. */
  readonly role: "scheduler" | "worker";
  create(config: KeepaliveConfig, logger: Logger, http: { host: string; port: number }): RunnableService;
  /** Longest a clean stop may take (see {@link runUntilSignal}). @defaultValue 30 s */
  stopTimeoutMs?(config: KeepaliveConfig): number;
}

/**
 * The `main` of both programs: `--config FILE` (or KEEPALIVE_CONFIG) and `--help`, the config
 * validated once, one logger, the service run until SIGTERM/SIGINT. A bad argument or config
 * exits 2 with a message naming it; any other start-up error exits 1.
 */
export function runProgram(spec: ProgramSpec, argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): void {
  const usage = `usage: ${spec.name} [--config FILE]\n  (or KEEPALIVE_CONFIG=FILE; REDIS_URL overrides redis.url, HTTP_HOST/HTTP_PORT the ops HTTP server)`;
  const main = async (): Promise<void> => {
    let configPath: string | undefined;
    try {
      const { values } = parseArgs({ args: argv, options: { config: { type: "string" }, help: { type: "boolean" } }, strict: true });
      if (values.help) {
        process.stdout.write(`${usage}\n`);
        return;
      }
      configPath = values.config;
    } catch (err) {
      throw new UsageError(`${(err as Error).message}\n${usage}`);
    }
    const config = resolveConfig(configPath, env);
    requireRedisTarget(config);
    const logger = createLogger({ name: spec.name, level: config.log.level });
    const service = spec.create(config, logger, httpListenFor(config, spec.role));
    const stopTimeoutMs = spec.stopTimeoutMs?.(config);
    await runUntilSignal(spec.name, service, logger, stopTimeoutMs === undefined ? {} : { stopTimeoutMs });
  };
  main().catch((err: unknown) => exitOnStartupError(spec.name, err));
}

/**
 * A named stop step that logs a warning when it is still running after `warnAfterMs` (and once
 * more when it ends), so a stop that hangs says where. With `giveUpAfterMs`, the step is left
 * behind after that long (logged) and the stop goes on: a BullMQ consumer whose blocking
 * connection still points at a Redis Cluster node that died in a failover can wait forever to
 * close, and closing the connections next ends it. For {@link closeInOrder}'s step lists.
 */
export function watchedStep(log: Logger, name: string, step: () => Promise<unknown>, options: { warnAfterMs?: number; giveUpAfterMs?: number } = {}): () => Promise<unknown> {
  const warnAfterMs = options.warnAfterMs ?? 5_000;
  return async () => {
    const started = Date.now();
    const warn = setTimeout(() => log.warn({ step: name, afterMs: warnAfterMs }, `stop: ${name} still running`), warnAfterMs);
    let giveUp: NodeJS.Timeout | undefined;
    let gaveUp = false;
    try {
      const running = step();
      if (options.giveUpAfterMs === undefined) return await running;
      const limit = options.giveUpAfterMs;
      return await Promise.race([
        running,
        new Promise<void>((resolve) => {
          giveUp = setTimeout(() => {
            gaveUp = true;
            log.warn({ step: name, afterMs: limit }, `stop: ${name} did not finish within ${limit} ms; going on with the stop`);
            resolve();
          }, limit);
        }),
      ]);
    } finally {
      clearTimeout(warn);
      clearTimeout(giveUp);
      const tookMs = Date.now() - started;
      if (tookMs >= warnAfterMs && !gaveUp) log.warn({ step: name, tookMs }, `stop: ${name} done after ${tookMs} ms`);
    }
  };
}
