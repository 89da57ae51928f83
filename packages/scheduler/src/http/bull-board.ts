import type { IncomingMessage, ServerResponse } from "node:http";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import type { MountedHandler } from "@vmcp-keepalive/runtime";
import { checkBasicAuth, type BasicAuthCredentials } from "./basic-auth.js";

/** Where Bull Board is served (docs/operations.md, "Bull Board"). */
export const BULL_BOARD_PATH = "/admin/queues";

/**
 * True when a request's `Host` names this machine's loopback: `localhost`, `127.0.0.1`, `[::1]` or
 * the address the server is bound to, with any port. A page on another site that resolves its
 * own name to 127.0.0.1 (DNS rebinding) still sends its own name as Host: refused.
 */
export function isLoopbackHostHeader(host: string | undefined, boundHost: string): boolean {
  if (!host) return false;
  const name = (host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d+$/, "")).toLowerCase();
  const bound = boundHost.includes(":") && !boundHost.startsWith("[") ? `[${boundHost}]` : boundHost.toLowerCase();
  return name === "localhost" || name === "127.0.0.1" || name === "[::1]" || name === bound;
}

/**
 * Bull Board for our queues, mounted on the scheduler's ops HTTP server under
 * {@link BULL_BOARD_PATH}. With `auth`, every request (pages, assets, API) needs HTTP Basic
 * credentials. Without it the caller has checked that the server is bound to loopback, and every
 * request must also name loopback in its `Host` header (else 403): a browser page elsewhere
 * cannot reach the board through DNS rebinding.
 */
export function createBullBoardMount(queues: readonly Queue[], auth: BasicAuthCredentials | undefined, boundHost = "127.0.0.1"): MountedHandler {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    serverAdapter,
    // No workers view: it runs CLIENT LIST (an admin command, which lists every connection of the
    // Redis) on every poll, and the scheduler's Redis user may not (docs/operations.md, "Redis users").
    options: { uiConfig: { boardTitle: "vmcp-keepalive", showWorkers: false } },
  });
  // The adapter's express app routes relative to its mount point, as `app.use(BULL_BOARD_PATH, …)` would.
  const app = serverAdapter.getRouter() as (req: IncomingMessage, res: ServerResponse) => void;
  return {
    prefix: BULL_BOARD_PATH,
    handle(req, res) {
      if (auth && !checkBasicAuth(req, res, auth, "vmcp-keepalive Bull Board")) return;
      if (!auth && !isLoopbackHostHeader(req.headers.host, boundHost)) {
        res
          .writeHead(403, { "content-type": "text/plain" })
          .end("Bull Board without a password answers only to a loopback Host (localhost, 127.0.0.1, [::1]); set admin.password to serve it under another name\n");
        return;
      }
      const url = req.url ?? "/";
      req.url = url.slice(BULL_BOARD_PATH.length) || "/";
      if (!req.url.startsWith("/")) req.url = `/${req.url}`;
      app(req, res);
    },
  };
}
