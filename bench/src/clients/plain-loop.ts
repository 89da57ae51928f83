/**
 * The limit the keepalive system is compared with: an SDK client pinging existing sessions in a
 * tight loop at a fixed concurrency — the most pings per second (and the least CPU per ping) a
 * plain client gets from the same backend. No queue, no lock, no state. Runs until SIGTERM;
 * the benchmark counts pings at the backend and CPU from /proc.
 */
import { attachClient, exitOnSignal, parseClientArgs } from "./sdk-clients.js";

const args = parseClientArgs(process.argv);
const concurrency = args.concurrency ?? 32;
let stopping = false;

const clients = await Promise.all(Array.from({ length: concurrency }, (_, i) => attachClient(args.url, args.sessions[((args.firstSession ?? 0) + i) % args.sessions.length]!)));
exitOnSignal(clients, () => (stopping = true));
process.stdout.write("ready\n");
for (const client of clients) {
  void (async () => {
    while (!stopping) {
      try {
        await client.ping({ timeout: args.timeoutMs ?? 10_000 });
      } catch {
        // Counted at the backend; a failing ping just loops.
      }
    }
  })();
}
