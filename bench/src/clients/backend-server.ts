/**
 * The bench's MCP backend (an SDK server, `startMcpTestBackend`) in a process of its own, so
 * that nothing the benchmark itself does — reading the queue's event stream for lag, counting,
 * its garbage — can stall the server every keepalive calls (docs/benchmarks.md, "How a run is
 * set up"). The parent asks for its call record over IPC (backend-process.ts).
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startMcpTestBackend } from "@vmcp-keepalive/testkit";
import type { BackendRequest, BackendReply } from "../backend-process.js";

const args = JSON.parse(process.argv[2] ?? "{}") as { jsonResponse?: boolean };
const backend = await startMcpTestBackend({ jsonResponse: args.jsonResponse === true, name: "bench-backend" });
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

function answer(req: BackendRequest): number | number[] {
  const calls = backend.calls;
  const countBetween = (from: number, to: number | undefined, match: (c: (typeof calls)[number]) => boolean) => {
    let n = 0;
    for (let i = from; i < (to ?? calls.length); i++) if (match(calls[i]!)) n++;
    return n;
  };
  switch (req.op) {
    case "count":
      return calls.length;
    case "pingsBetween":
      return countBetween(req.from, req.to, (c) => c.method === "ping");
    case "errorsBetween":
      return countBetween(req.from, req.to, (c) => c.status !== undefined);
    case "pingTimes":
      return calls.filter((c) => c.method === "ping" && c.at >= req.fromMs && c.at < req.toMs).map((c) => c.at);
    case "clear":
      calls.length = 0;
      return 0;
    case "loopDelayMaxMs": {
      const max = Math.round(loopDelay.max / 1e6);
      loopDelay.reset();
      return max;
    }
  }
}

process.on("message", (req: BackendRequest & { id: number }) => {
  const reply: BackendReply = { id: req.id, value: answer(req) };
  process.send?.(reply);
});
const stop = () => {
  loopDelay.disable();
  void backend.stop().finally(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.once("disconnect", stop);
process.send?.({ ready: backend.url });
