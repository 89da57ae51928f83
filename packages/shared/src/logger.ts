/**
 * The logging surface the client library needs: pino's call shape (`log.warn({ sessionId },
 * "msg")`, errors under `err`), so a vMCP passes its pino logger as is, without the library
 * depending on pino.
 */
export interface ClientLogger {
  child(bindings: Record<string, unknown>): ClientLogger;
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Logs nothing: the client's default. */
export const SILENT_LOGGER: ClientLogger = {
  child: () => SILENT_LOGGER,
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
