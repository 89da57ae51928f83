import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger } from "pino";

/**
 * Paths never written to logs: backend headers carry credentials (`${ENV}` in the config).
 * Code never logs a BackendConfig whole, and these paths catch the slips.
 */
export const REDACT_PATHS = ["headers", "*.headers", "backend.headers", "config.backends[*].headers", "authorization", "*.authorization", "password", "*.password"];

/** One JSON logger per process; child loggers per component and per job. */
export function createLogger(options: { name: string; level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
