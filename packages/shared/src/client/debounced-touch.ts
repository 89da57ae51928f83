/**
 * What one `session.touched` reports: when the activity happened, which backends it called, and
 * the credentials it used for them (`C`: whatever the caller carries; the latest per backend wins).
 */
export interface TouchActivity<C = never> {
  readonly at: number;
  readonly backendIds: readonly string[];
  readonly credentials: ReadonlyMap<string, C>;
}

export interface DebouncedTouchOptions<C> {
  /** Publishes one `session.touched`. Must not reject (a guarded publish). */
  readonly send: (sessionId: string, activity: TouchActivity<C>) => Promise<unknown>;
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
export interface DebouncedTouch<C = never> {
  touch(sessionId: string, backendIds: readonly string[], credentials?: ReadonlyMap<string, C>): void;
  /** Forgets the session's debounce and drops its pending trailing touch (the session ended). */
  drop(sessionId: string): void;
  /**
   * A registration of the session was just sent: it slides the session's expiry as a touch does,
   * so the debounce starts over — unless the pending touch reports backend traffic, which a
   * registration does not carry. (Credentials it carries, a registration carries too.)
   */
  coveredByRegistration(sessionId: string): void;
  /** Sends every pending trailing touch now, stops every timer, and resolves once they are sent. */
  flush(): Promise<void>;
}

interface Pending<C> {
  at: number;
  backends: Set<string>;
  credentials: Map<string, C>;
  /** When the first backend named by this trailing touch was used. */
  earliestBackendUse: number | undefined;
}

interface Entry<C> {
  timer: NodeJS.Timeout;
  pending: Pending<C> | undefined;
}

export function createDebouncedTouch<C = never>(options: DebouncedTouchOptions<C>): DebouncedTouch<C> {
  // One entry per session with a touch sent in the current interval.
  const entries = new Map<string, Entry<C>>();

  // The trailing touch is dated by the earliest first use among the backends it names:
  // a backend's traffic is never reported later than it happened.
  const send = (sessionId: string, p: Pending<C>) => options.send(sessionId, { at: p.earliestBackendUse ?? p.at, backendIds: [...p.backends], credentials: p.credentials });

  const arm = (sessionId: string) => {
    const entry: Entry<C> = {
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

  const take = (sessionId: string): Pending<C> | undefined => {
    const entry = entries.get(sessionId);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    entries.delete(sessionId);
    return entry.pending;
  };

  return {
    touch(sessionId, backendIds, credentials = new Map()) {
      const at = options.now();
      const entry = entries.get(sessionId);
      if (!entry) {
        void send(sessionId, { at, backends: new Set(backendIds), credentials: new Map(credentials), earliestBackendUse: undefined });
        arm(sessionId);
        return;
      }
      const pending = (entry.pending ??= { at, backends: new Set(), credentials: new Map(), earliestBackendUse: undefined });
      pending.at = at;
      for (const [backendId, c] of credentials) pending.credentials.set(backendId, c);
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
