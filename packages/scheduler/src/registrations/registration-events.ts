import type { RejectionReason } from "@vmcp-keepalive/shared";

/** Events of the scheduler's registration consumer. */
export interface RegistrationEventMap {
  applied: { type: string; sessionId: string; status: string; pairs: number };
  rejected: { reason: RejectionReason; detail: string; jobId: string | undefined };
  /** A reconcile pass repaired a job scheduler. */
  reconciled: { kind: "scheduler_added" | "scheduler_removed" | "next_job_restored" };
}
