import { connect } from "node:net";

export interface MonitorCount {
  /** Commands clients sent (one request/response each, whether pipelined or not). */
  readonly clientCommands: number;
  /** Commands run by Lua scripts (`redis.call` inside EVALSHA), not round trips. */
  readonly scriptCommands: number;
  /** Client commands by name, most frequent first. */
  readonly byCommand: Readonly<Record<string, number>>;
}

/**
 * Counts the commands Redis receives from clients for a while, using MONITOR: every line names
 * its source (`[0 127.0.0.1:port]` for a client, `[0 lua]` for a command a script ran), so client
 * round trips and script-internal commands can be told apart — INFO commandstats cannot. MONITOR
 * costs Redis throughput, so it runs in its own short window, never during a timed window.
 *
 * A raw socket, not ioredis' `monitor()`: ioredis switches the connection to monitor mode one
 * microtask after MONITOR's `+OK`, and under load the first monitor lines arrive in the same
 * chunk and crash it with "Command queue state error".
 */
export async function countCommands(url: string, durationMs: number, ignore: readonly string[] = ["info", "client"]): Promise<MonitorCount> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port || 6379), hostname);
  socket.setEncoding("utf8");
  const byCommand = new Map<string, number>();
  let clientCommands = 0;
  let scriptCommands = 0;
  let rest = "";
  let started = false;
  socket.on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\r\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "+OK" && !started) {
        started = true;
        continue;
      }
      // +1795479385.799114 [0 lua] "HGETALL" "key"
      const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
      if (!m) continue;
      const name = m[2]!.toLowerCase();
      if (ignore.includes(name)) continue;
      if (m[1] === "lua") {
        scriptCommands++;
        continue;
      }
      clientCommands++;
      byCommand.set(name, (byCommand.get(name) ?? 0) + 1);
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  socket.write("MONITOR\r\n");
  await new Promise((r) => setTimeout(r, durationMs));
  socket.destroy();
  const sorted = [...byCommand.entries()].sort((a, b) => b[1] - a[1]);
  return { clientCommands, scriptCommands, byCommand: Object.fromEntries(sorted) };
}
