import type { ClientLogger } from "../logger.js";

/** Outcome of publishing one lifecycle message. A failure is logged and returned, never thrown. */
export type PublishResult = { readonly ok: true } | { readonly ok: false; readonly reason: "publish_failed"; readonly error: Error };

/**
 * Turns a publish into a {@link PublishResult} (a Redis problem is logged, never thrown: keepalive
 * problems must not reach the vMCP) and remembers it until it settles, so `close()` can wait for
 * every message already on its way.
 */
export interface PublishGuard {
  /** Runs `send`; `what` names the message in the warning. */
  run(what: string, sessionId: string, send: () => Promise<void>): Promise<PublishResult>;
  /** Resolves once every publish started so far has settled. */
  idle(): Promise<void>;
}

export const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

export function createPublishGuard(log: ClientLogger): PublishGuard {
  const inFlight = new Set<Promise<PublishResult>>();
  return {
    run(what, sessionId, send) {
      const result = (async (): Promise<PublishResult> => {
        try {
          await send();
          return { ok: true };
        } catch (err) {
          const error = asError(err);
          log.warn({ err: error, sessionId }, `could not publish ${what}; keepalive for this session may lag`);
          return { ok: false, reason: "publish_failed", error };
        }
      })();
      inFlight.add(result);
      void result.finally(() => inFlight.delete(result));
      return result;
    },
    async idle() {
      await Promise.all([...inFlight]);
    },
  };
}
