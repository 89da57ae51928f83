/** What one `session.touched` reports: when the activity happened and which backends it called. */
export interface TouchActivity {
  readonly at: number;
  readonly backendIds: readonly string[];
}

export interface DebouncedTouchOptions {
  /** Publishes one `session.touched`. Must not reject (a guarded publish). */
  readonly send: (sessionId: string, activity: TouchActivity) => Promise<unknown>;
  /** At most one message per session per interval. */
  readonly intervalMs: number;
  /** Clock (ms). */
  readonly now: () => number;
}

/**
 * Debounces activity per session: the first touch is sent at once; later ones within the interval
 * fold into one trailing touch sent at its end, which re-arms the interval. A busy session costs at
 * most one message per interval and its last activity is never lost. Never waits for Redis.
 */
export interface DebouncedTouch {
  touch(sessionId: string, backendIds: readonly string[]): void;
  /** Forgets the session's debounce and drops its pending trailing touch (the session ended). */
  drop(sessionId: string): void;
  /**
   * A registration of the session was just sent: it slides the session's expiry as a touch does,
   * so the debounce starts over — unless the pending touch reports backend traffic, which a
   * registration does not carry.
   */
  coveredByRegistration(sessionId: string): void;
  /** Sends every pending trailing touch now, stops every timer, and resolves once they are sent. */
  flush(): Promise<void>;
}

interface Pending {
  at: number;
  backends: Set<string>;
  /** When the first backend named by this trailing touch was used. */
  earliestBackendUse: number | undefined;
}

interface Entry {
  timer: NodeJS.Timeout;
  pending: Pending | undefined;
}

export function createDebouncedTouch(options: DebouncedTouchOptions): DebouncedTouch {
  // One entry per session with a touch sent in the current interval.
  const entries = new Map<string, Entry>();

  // The trailing touch is dated by the earliest first use among the backends it names:
  // a backend's traffic is never reported later than it happened.
  const send = (sessionId: string, p: Pending) => options.send(sessionId, { at: p.earliestBackendUse ?? p.at, backendIds: [...p.backends] });

  const arm = (sessionId: string) => {
    const entry: Entry = {
      pending: undefined,
      timer: setTimeout(() => {
        entries.delete(sessionId);
        if (!entry.pending) return;
        void send(sessionId, entry.pending);
        arm(sessionId);
      }, options.intervalMs),
    };
    entry.timer.unref();
    entries.set(sessionId, entry);
  };

  const take = (sessionId: string): Pending | undefined => {
    const entry = entries.get(sessionId);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    entries.delete(sessionId);
    return entry.pending;
  };

  return {
    touch(sessionId, backendIds) {
      const at = options.now();
      const entry = entries.get(sessionId);
      if (!entry) {
        void send(sessionId, { at, backends: new Set(backendIds), earliestBackendUse: undefined });
        arm(sessionId);
        return;
      }
      const pending = (entry.pending ??= { at, backends: new Set(), earliestBackendUse: undefined });
      pending.at = at;
      for (const b of backendIds) {
        if (!pending.backends.has(b)) pending.earliestBackendUse = Math.min(pending.earliestBackendUse ?? at, at);
        pending.backends.add(b);
      }
    },
    drop(sessionId) {
      take(sessionId);
    },
    coveredByRegistration(sessionId) {
      if ((entries.get(sessionId)?.pending?.backends.size ?? 0) === 0) take(sessionId);
    },
    async flush() {
      const pending = [...entries.keys()].flatMap((sessionId) => {
        const p = take(sessionId);
        return p ? [send(sessionId, p)] : [];
      });
      await Promise.all(pending);
    },
  };
}
