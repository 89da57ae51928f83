import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

export interface BackendSession {
  readonly sessionId: string;
  readonly protocolVersion: string;
}

/**
 * An SDK client attached to an existing backend session, the way a gateway holds one: the
 * transport is given the session id, so `connect()` sends no `initialize`.
 */
export async function attachClient(url: string, session: BackendSession): Promise<Client> {
  const client = new Client({ name: "vmk-bench-client", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { sessionId: session.sessionId });
  transport.setProtocolVersion(session.protocolVersion);
  await client.connect(transport);
  return client;
}

/** Arguments every client program takes as one JSON argv[2]. */
export interface ClientArgs {
  readonly url: string;
  readonly sessions: readonly BackendSession[];
  /** plain loop: concurrent ping loops. */
  readonly concurrency?: number;
  /**
   * plain loop: index of this process's first session. Two SDK clients must never share a
   * session: both number their requests 0, 1, 2… and the server loses one of two answers with
   * the same id (docs/design.md), which stalls the loser until its timeout.
   */
  readonly firstSession?: number;
  /** in-process timers: number of pairs and their interval. */
  readonly pairs?: number;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
}

export function parseClientArgs(argv: readonly string[]): ClientArgs {
  const raw = argv[2];
  if (!raw) throw new Error("usage: <program> '<json args>'");
  return JSON.parse(raw) as ClientArgs;
}

/** Runs until SIGTERM/SIGINT, then closes the clients and exits 0. */
export function exitOnSignal(clients: readonly Client[], onStop: () => void): void {
  const stop = () => {
    onStop();
    void Promise.allSettled(clients.map((c) => c.close())).then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
