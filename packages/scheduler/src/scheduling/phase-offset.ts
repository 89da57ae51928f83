import { createHash } from "node:crypto";

/** Longest phase slot: ticks of pairs in one slot are due at the same millisecond. */
const MAX_SLOT_MS = 50;

/**
 * Width of the phase slots of an interval: a two-hundredth of it, at most 50 ms (20 s → 50 ms,
 * 5 min → 50 ms, 2 s → 10 ms). Per second of the interval the load stays flat (20 slots a
 * second), but the ticks due in one slot come due together, so a worker wakes once for them and
 * hands each finished job the next one, instead of waking and fetching for every tick on its own.
 */
export function phaseSlotMs(everyMs: number): number {
  return Math.max(1, Math.min(MAX_SLOT_MS, Math.floor(everyMs / 200)));
}

/**
 * Phase offset of a pair inside its interval, in [1, every - 1] ms, at the start of a slot
 * ({@link phaseSlotMs}) + 1 ms.
 *
 * BullMQ `every` schedulers created together fire together (within milliseconds, every interval),
 * so each pair gets a phase derived from a hash of its id: uniform over the interval's slots,
 * stable across re-upserts (the same pair always lands on the same phase) and never 0, because
 * BullMQ treats `offset: 0` as "fire now".
 */
export function phaseOffset(sessionId: string, backendId: string, everyMs: number): number {
  if (everyMs < 2) return 1;
  const digest = createHash("sha1").update(sessionId).update("\0").update(backendId).digest();
  // 48 bits: exact in a double, and far more states than any interval has slots.
  const h = digest.readUIntBE(0, 6);
  const slot = phaseSlotMs(everyMs);
  const slots = Math.max(1, Math.floor((everyMs - 1) / slot));
  return 1 + (h % slots) * slot;
}
