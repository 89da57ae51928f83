import { Queue, type JobsOptions } from "bullmq";
import type { RedisConnection } from "../redis/connection.js";
import { QUEUE_SESSIONS, STREAM_MESSAGE_FIELD, STREAM_SESSION_MESSAGES } from "../names.js";
import { queueOptions } from "../queues.js";
import type { QueueLocation } from "../redis/keys.js";
import type { BackendRegistration, SessionMessageInput } from "../messages/schema.js";
import { SessionMessageSchema } from "../messages/schema.js";

/** Job options of every lifecycle message: bounded retention, retries for transient failures. */
export const SESSION_MESSAGE_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: "exponential", delay: 500 },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 5_000 },
};

export interface RegisterOptions {
  /** Sliding vMCP session TTL. */
  sessionTtlMs: number;
  maxLifetimeMs?: number;
  backends: readonly BackendRegistration[];
}

/**
 * Publishes session lifecycle messages to `vmcp-sessions` — the vMCP side of the contract.
 * Sequences are `Date.now() * 1000 + n`, strictly increasing per session in this process and
 * ordered across replicas by their clocks, so a session handed from one replica to another
 * keeps a monotonic sequence.
 */
export interface SessionPublisher {
  register(sessionId: string, options: RegisterOptions): Promise<void>;
  /** `at`: when the activity happened (ms; default now); `backendIds`: the backends it called. */
  touch(sessionId: string, activity?: { at?: number; backendIds?: readonly string[] }): Promise<void>;
  end(sessionId: string, reason?: string): Promise<void>;
  /** Asks the scheduler to reconcile a re-initialized pair's job scheduler (see `session.backend_reinitialized`). */
  backendReinitialized(sessionId: string, backendId: string): Promise<void>;
  /** Sends a prepared message as is (validated first). */
  publish(message: SessionMessageInput): Promise<void>;
  nextSequence(sessionId: string): number;
  close(): Promise<void>;
}

/** How lifecycle messages reach the schedulers: BullMQ jobs on `vmcp-sessions`, or entries of the ingress stream. */
export type SessionTransport = "queue" | "stream";

export interface SessionPublisherOptions {
  readonly connection: RedisConnection;
  /** Key prefix of the standalone, unsharded layout (when `queue` is not given). @defaultValue "vmk" */
  readonly prefix?: string;
  /** Where `vmcp-sessions` lives (`keys.sessionsQueue` of the servers' key layout); the ingress stream sits beside it. */
  readonly queue?: QueueLocation;
  readonly replicaId: string;
  readonly now?: () => number;
  /**
   * `stream`: each message is `XADD <sessions prefix>:session-messages * message <JSON>` (the
   * ingress stream, no BullMQ job); `queue`: a BullMQ job on `vmcp-sessions`. The schedulers
   * read both and apply them alike. @defaultValue "queue"
   */
  readonly transport?: SessionTransport;
}

/**
 * Where `vmcp-sessions` lives: `queue` (`keys.sessionsQueue` of the servers' key layout), or
 * queue `vmcp-sessions` under `prefix` (the standalone, unsharded layout).
 */
export function createSessionPublisher(options: SessionPublisherOptions): SessionPublisher {
  const now = options.now ?? Date.now;
  const where: QueueLocation = options.queue ?? { name: QUEUE_SESSIONS, prefix: options.prefix ?? "vmk" };
  const transport = options.transport ?? "queue";
  if (transport !== "queue" && transport !== "stream") throw new Error(`transport must be "queue" or "stream", got ${JSON.stringify(transport)}`);
  // Same key as `keys.sessionMessagesStream`: the stream sits beside the queue, in its hash slot.
  const streamKey = `${where.prefix}:${STREAM_SESSION_MESSAGES}`;
  const queue = transport === "queue" ? new Queue(where.name, queueOptions(options.connection, where)) : undefined;
  queue?.on("error", () => {});
  const lastSequence = new Map<string, number>();

  const nextSequence = (sessionId: string): number => {
    const candidate = now() * 1000;
    const last = lastSequence.get(sessionId) ?? -1;
    const seq = candidate > last ? candidate : last + 1;
    lastSequence.set(sessionId, seq);
    return seq;
  };

  const publish = async (message: SessionMessageInput) => {
    const checked = SessionMessageSchema.parse(message);
    if (queue) await queue.add(checked.type, checked, SESSION_MESSAGE_JOB_OPTIONS);
    else await options.connection.xadd(streamKey, "*", STREAM_MESSAGE_FIELD, JSON.stringify(checked));
  };

  return {
    nextSequence,
    publish,
    register: (sessionId, o) =>
      publish({
        type: "session.registered",
        sessionId,
        replicaId: options.replicaId,
        occurredAt: new Date(now()).toISOString(),
        sequence: nextSequence(sessionId),
        sessionTtlMs: o.sessionTtlMs,
        ...(o.maxLifetimeMs === undefined ? {} : { maxLifetimeMs: o.maxLifetimeMs }),
        backends: [...o.backends],
      }),
    touch: (sessionId, activity = {}) =>
      publish({
        type: "session.touched",
        sessionId,
        occurredAt: new Date(activity.at ?? now()).toISOString(),
        sequence: nextSequence(sessionId),
        ...(activity.backendIds && activity.backendIds.length > 0 ? { backendIds: [...activity.backendIds] } : {}),
      }),
    backendReinitialized: (sessionId, backendId) =>
      publish({
        type: "session.backend_reinitialized",
        sessionId,
        occurredAt: new Date(now()).toISOString(),
        sequence: nextSequence(sessionId),
        backendId,
      }),
    async end(sessionId, reason) {
      await publish({
        type: "session.ended",
        sessionId,
        occurredAt: new Date(now()).toISOString(),
        sequence: nextSequence(sessionId),
        ...(reason === undefined ? {} : { reason }),
      });
      lastSequence.delete(sessionId);
    },
    async close() {
      await queue?.close();
    },
  };
}
