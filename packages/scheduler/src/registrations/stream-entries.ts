/*
 * The pure pieces of the ingress-stream consumer: reading Redis's stream replies, finding the
 * message in an entry, keeping one session's entries in order, and bounding what runs at once.
 */

/** One stream entry: its id and its fields (`null` for an entry deleted while it was pending). */
export interface StreamEntry {
  readonly id: string;
  readonly fields: Readonly<Record<string, string>> | null;
}

/** Entries of a `[id, [field, value, …] | null][]` list (XRANGE, XAUTOCLAIM, one stream of XREADGROUP). */
export function parseEntries(raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((item): StreamEntry[] => {
    if (!Array.isArray(item) || typeof item[0] !== "string") return [];
    const list: unknown = item[1];
    if (!Array.isArray(list)) return [{ id: item[0], fields: null }];
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < list.length; i += 2) fields[String(list[i])] = String(list[i + 1]);
    return [{ id: item[0], fields }];
  });
}

/** The entries of an XREADGROUP reply (`[[key, entries], …]` or null on timeout) for one stream. */
export function parseReadReply(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  return reply.flatMap((stream: unknown) => (Array.isArray(stream) ? parseEntries(stream[1]) : []));
}

/** An XAUTOCLAIM reply: the cursor to go on from (`0-0` = done), the entries claimed, and (Redis ≥ 7) the ids deleted meanwhile. */
export function parseAutoClaimReply(reply: unknown): { cursor: string; entries: StreamEntry[]; deleted: string[] } {
  const r = Array.isArray(reply) ? reply : [];
  return {
    cursor: typeof r[0] === "string" ? r[0] : "0-0",
    entries: parseEntries(r[1]),
    deleted: Array.isArray(r[2]) ? r[2].map(String) : [],
  };
}

/** Delivery counts by entry id from an extended XPENDING reply (`[id, consumer, idle, deliveries][]`). */
export function parsePendingCounts(reply: unknown): Map<string, number> {
  const counts = new Map<string, number>();
  if (!Array.isArray(reply)) return counts;
  for (const row of reply) if (Array.isArray(row) && typeof row[0] === "string") counts.set(row[0], Number(row[3]));
  return counts;
}

/**
 * The lifecycle message of an entry (field `message`), or why there is none: the message
 * parser names every other problem of it.
 */
export function messageOf(entry: StreamEntry, field: string): { ok: true; payload: string } | { ok: false; detail: string } {
  const value = entry.fields?.[field];
  if (value !== undefined) return { ok: true, payload: value };
  const names = Object.keys(entry.fields ?? {});
  return { ok: false, detail: `entry has no "${field}" field (it has ${names.length === 0 ? "none" : names.map((n) => JSON.stringify(n)).join(", ")})` };
}

/** At most `maxBytes` of a string (UTF-8), for keeping a copy of an oversized entry. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  return Buffer.from(text)
    .subarray(0, maxBytes)
    .toString("utf8")
    .replace(/\uFFFD$/, "");
}

/**
 * Runs the tasks given for one key one after another, in the order given, and tasks of different
 * keys side by side: the entries of one session are applied in stream order (within one
 * scheduler), those of different sessions at once.
 */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<void>>();

  run(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.tails.get(key);
    const next = previous ? previous.then(task, task) : task();
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Keys with a task queued or running. */
  get size(): number {
    return this.tails.size;
  }
}

/** A counting semaphore: `acquire` waits for a free slot. */
export class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`slots must be a positive integer, got ${size}`);
  }

  get free(): number {
    return this.size - this.used;
  }

  get inUse(): number {
    return this.used;
  }

  async acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Waits until at least one slot is free (without taking it). */
  async whenFree(): Promise<void> {
    while (this.used >= this.size) {
      await new Promise<void>((resolve) =>
        this.waiting.push(() => {
          // Handed a slot: give it back (to the next waiter, or free), the caller takes one itself.
          this.release();
          resolve();
        }),
      );
    }
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) {
      next();
      return;
    }
    this.used--;
    if (this.used === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves once no slot is in use. */
  async idle(): Promise<void> {
    if (this.used === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}
