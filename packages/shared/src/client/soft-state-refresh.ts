import type { SessionCredentials } from "../credentials/credential-key-ring.js";
import type { SessionOptions } from "./session-credentials.js";

export interface SoftStateRefreshOptions {
  /** Publishes the session's registration again. Must not reject (a guarded publish). */
  readonly send: (sessionId: string, options: SessionOptions) => Promise<unknown>;
  /** How often a session is refreshed; 0 or less: never. */
  readonly intervalFor: (options: SessionOptions) => number;
  /** Called just before each refresh is sent. */
  readonly onRefresh?: (sessionId: string) => void;
  /** Jitter source in [0, 1). @defaultValue Math.random */
  readonly random?: () => number;
}

/**
 * Soft state: every live session is registered again each interval (jittered ±10 %), with its
 * current backends and a new sequence, so whatever Redis forgets comes back within one interval.
 * A forgotten (ended) session is never sent again.
 */
export interface SoftStateRefresh {
  /** The session was registered with `options`: refresh it from now on (replaces earlier options). */
  remember(sessionId: string, options: SessionOptions): void;
  /** A backend was re-initialized: later refreshes carry its new backend session. */
  updateBackend(sessionId: string, backendId: string, backend: { readonly backendSessionId: string; readonly protocolVersion?: string | undefined }): void;
  /** New credentials for a backend (from a touch or an update): later refreshes carry them. */
  updateCredentials(sessionId: string, backendId: string, credentials: SessionCredentials): void;
  /** The session ended: never refresh it again. */
  forget(sessionId: string): void;
  /** Forgets every session; nothing is sent afterwards. */
  stop(): void;
}

interface Entry {
  options: SessionOptions;
  timer: NodeJS.Timeout | undefined;
}

export function createSoftStateRefresh(options: SoftStateRefreshOptions): SoftStateRefresh {
  const random = options.random ?? Math.random;
  const live = new Map<string, Entry>();
  let stopped = false;

  const arm = (sessionId: string, entry: Entry) => {
    const every = options.intervalFor(entry.options);
    if (every <= 0) return;
    entry.timer = setTimeout(
      () => {
        if (live.get(sessionId) !== entry || stopped) return;
        options.onRefresh?.(sessionId);
        void options.send(sessionId, entry.options);
        arm(sessionId, entry);
      },
      Math.round(every * (0.9 + 0.2 * random())),
    );
    entry.timer.unref();
  };

  const forget = (sessionId: string) => {
    const entry = live.get(sessionId);
    if (entry?.timer) clearTimeout(entry.timer);
    live.delete(sessionId);
  };

  return {
    remember(sessionId, o) {
      if (stopped) return;
      forget(sessionId);
      const entry: Entry = { options: { ...o, backends: o.backends.map((b) => ({ ...b })) }, timer: undefined };
      live.set(sessionId, entry);
      arm(sessionId, entry);
    },
    updateBackend(sessionId, backendId, backend) {
      const entry = live.get(sessionId);
      if (!entry) return;
      const backends = entry.options.backends.map((b) =>
        b.backendId === backendId ? { ...b, backendSessionId: backend.backendSessionId, ...(backend.protocolVersion === undefined ? {} : { protocolVersion: backend.protocolVersion }) } : b,
      );
      entry.options = { ...entry.options, backends };
    },
    updateCredentials(sessionId, backendId, credentials) {
      const entry = live.get(sessionId);
      if (!entry) return;
      entry.options = { ...entry.options, backends: entry.options.backends.map((b) => (b.backendId === backendId ? { ...b, credentials } : b)) };
    },
    forget,
    stop() {
      stopped = true;
      for (const sessionId of [...live.keys()]) forget(sessionId);
    },
  };
}
