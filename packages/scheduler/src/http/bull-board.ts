import type { IncomingMessage, ServerResponse } from "node:http";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import type { MountedHandler } from "@vmcp-keepalive/runtime";
import { checkBasicAuth, type BasicAuthCredentials } from "./basic-auth.js";

/** Where Bull Board is served (contract: DESIGN.md "HTTP"). */
export const BULL_BOARD_PATH = "/admin/queues";

/**
 * Bull Board for our queues, mounted on the scheduler's ops HTTP server under
 * {@link BULL_BOARD_PATH}. With `auth`, every request (pages, assets, API) needs HTTP Basic
 * credentials; without it the caller has checked that the server is bound to loopback.
 */
export function createBullBoardMount(queues: readonly Queue[], auth: BasicAuthCredentials | undefined): MountedHandler {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q)),
    serverAdapter,
    options: { uiConfig: { boardTitle: "vmcp-keepalive" } },
  });
  // The adapter's express app routes relative to its mount point, as `app.use(BULL_BOARD_PATH, …)` would.
  const app = serverAdapter.getRouter() as (req: IncomingMessage, res: ServerResponse) => void;
  return {
    prefix: BULL_BOARD_PATH,
    handle(req, res) {
      if (auth && !checkBasicAuth(req, res, auth, "vmcp-keepalive Bull Board")) return;
      const url = req.url ?? "/";
      req.url = url.slice(BULL_BOARD_PATH.length) || "/";
      if (!req.url.startsWith("/")) req.url = `/${req.url}`;
      app(req, res);
    },
  };
}
