import { createHash } from "node:crypto";

/**
 * Phase offset of a pair inside its interval, in [1, every - 1] ms.
 *
 * BullMQ `every` schedulers created together fire together (measured: 200 pairs within ~60 ms),
 * so each pair gets a phase derived from a hash of its id: uniform over the interval, stable
 * across re-upserts (the same pair always lands on the same phase) and never 0, because BullMQ
 * treats `offset: 0` as "fire now".
 */
export function phaseOffset(sessionId: string, backendId: string, everyMs: number): number {
  if (everyMs < 2) return 1;
  const digest = createHash("sha1").update(sessionId).update("\0").update(backendId).digest();
  // 48 bits: exact in a double, and far more states than any interval has milliseconds.
  const h = digest.readUIntBE(0, 6);
  return 1 + (h % (everyMs - 1));
}
