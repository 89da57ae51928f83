/**
 * Baseline of the design without a queue: one process, one timer per session×backend pair that
 * pings on its interval (phases spread uniformly), as a gateway would do it in-process. It makes
 * the very call the worker makes (its backend client: string id, own deadline per call), so the
 * difference to the worker is exactly what the queue, the lock and the shared state cost.
 * Runs until SIGTERM.
 */
import { createBackendClient } from "@vmcp-keepalive/worker/internal";
import { parseClientArgs } from "./sdk-clients.js";

const args = parseClientArgs(process.argv);
const pairs = args.pairs ?? 1_000;
const intervalMs = args.intervalMs ?? 1_000;
const timeoutMs = args.timeoutMs ?? 10_000;
const timers: NodeJS.Timeout[] = [];
const backend = createBackendClient({ maxResponseBytes: 65_536 });
const stop = () => {
  timers.forEach((t) => clearTimeout(t));
  void backend.close().finally(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.stdout.write("ready\n");
for (let i = 0; i < pairs; i++) {
  const s = args.sessions[i % args.sessions.length]!;
  const target = { url: args.url, sessionId: s.sessionId, protocolVersion: s.protocolVersion };
  const tick = () => void backend.call(target, { method: "ping" }, timeoutMs);
  // Uniform phase over the interval, then a steady interval per pair.
  timers.push(
    setTimeout(
      () => {
        tick();
        timers.push(setInterval(tick, intervalMs));
      },
      Math.floor((i / pairs) * intervalMs),
    ),
  );
}
