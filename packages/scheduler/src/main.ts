import { parseArgs } from "node:util";
import { createLogger, exitOnStartupError, httpListenFor, resolveConfig, runUntilSignal, UsageError } from "@vmcp-keepalive/shared";
import { createScheduler } from "./create-scheduler.js";

const PROGRAM = "vmcp-keepalive-scheduler";
const USAGE = `usage: ${PROGRAM} [--config FILE]\n  (or KEEPALIVE_CONFIG=FILE; REDIS_URL overrides redis.url, HTTP_HOST/HTTP_PORT the ops HTTP server)`;

async function main(): Promise<void> {
  let configPath: string | undefined;
  try {
    const { values } = parseArgs({ options: { config: { type: "string" }, help: { type: "boolean" } }, strict: true });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    configPath = values.config;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${USAGE}`);
  }
  const config = resolveConfig(configPath, process.env);
  const logger = createLogger({ name: PROGRAM, level: config.log.level });
  const scheduler = createScheduler({ config, logger, http: httpListenFor(config, "scheduler") });
  await runUntilSignal(PROGRAM, scheduler, logger);
}

main().catch((err: unknown) => exitOnStartupError(PROGRAM, err));
