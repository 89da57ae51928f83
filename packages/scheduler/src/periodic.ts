import type { Logger } from "@vmcp-keepalive/runtime";

/** A pass that runs every interval, never two at once; `stop` waits for one in progress. */
export interface Periodic {
  start(): void;
  stop(): Promise<void>;
}

/**
 * Runs `pass` every `intervalMs(…)` after the previous pass ended (the first one interval after
 * `start`). A failed pass is logged and the next one runs as usual: the work is idempotent.
 */
export function createPeriodic(pass: () => Promise<unknown>, intervalMs: () => number, log: Logger, what: string): Periodic {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = true;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass()
        .catch((err: unknown) => log.error({ err }, `${what} failed; the next one retries`))
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, intervalMs());
    timer.unref();
  };
  return {
    start() {
      stopped = false;
      if (!timer) schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
