import type { RejectionReason } from "@vmcp-keepalive/shared";

/** How a lifecycle message came in: a job of the `vmcp-sessions` queue, or an entry of the ingress stream. */
export type MessageSource = "queue" | "stream";

/** What became of an ingress-stream entry once it left the stream (or, `failed`, was left for redelivery). */
export const STREAM_ENTRY_RESULTS = ["applied", "rejected", "given_up", "failed"] as const;
export type StreamEntryResult = (typeof STREAM_ENTRY_RESULTS)[number];

/** Events of the scheduler's registration consumers. */
export interface RegistrationEventMap {
  applied: { type: string; sessionId: string; status: string; pairs: number; source: MessageSource };
  rejected: { reason: RejectionReason; detail: string; source: MessageSource; id: string | undefined };
  /** A reconcile pass repaired a job scheduler. */
  reconciled: { kind: "scheduler_added" | "scheduler_removed" | "next_job_restored" };
  /** An ingress-stream entry was acknowledged (`applied`, `rejected`, `given_up`) or failed and stays pending for redelivery (`failed`). */
  streamEntry: { result: StreamEntryResult };
  /** Pending ingress-stream entries this scheduler took over (from a dead scheduler, or its own failed ones). */
  streamClaimed: { count: number };
}
