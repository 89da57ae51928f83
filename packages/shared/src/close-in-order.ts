/** One step of a stop sequence; `undefined` (a part that was never started) is skipped. */
export type StopStep = (() => Promise<unknown>) | undefined;

/**
 * Runs a stop sequence: every step in the given order (reverse of start), each even when an
 * earlier one failed, so nothing is left running; then throws the first error, if any. The
 * client library and both programs stop through this.
 */
export async function closeInOrder(steps: readonly StopStep[]): Promise<void> {
  let first: unknown;
  let failed = false;
  for (const step of steps) {
    if (!step) continue;
    try {
      await step();
    } catch (err) {
      if (!failed) first = err;
      failed = true;
    }
  }
  if (failed) throw first;
}
