import { UnrecoverableError, Worker, type Job } from "bullmq";
import { VmcpEventSchema, type VmcpEvent } from "../events/vmcp-events.js";
import type { ClientLogger } from "../logger.js";
import { closeRedis, type RedisConnection } from "../redis/connection.js";
import type { QueueLocation } from "../redis/keys.js";
import { closeInOrder } from "../close-in-order.js";

export type VmcpEventHandler = (event: VmcpEvent) => void | Promise<void>;

export interface EventSubscriptionOptions {
  /** Opens the consumer's blocking connection (`maxRetriesPerRequest: null`); the subscription closes it. */
  readonly connect: () => RedisConnection;
  /** Where `vmcp-events` lives (`keys.eventsQueue`). */
  readonly queue: QueueLocation;
  readonly concurrency: number;
  readonly log: ClientLogger;
}

/**
 * The `vmcp-events` subscription: one BullMQ Worker, started with the first handler, that hands
 * each event to every handler in turn. BullMQ gives each event to one consumer, so each event
 * reaches one replica. A handler that throws fails the job (BullMQ retries it); an event that does
 * not match the schema is logged and dropped without retries.
 */
export interface EventSubscription {
  /** Adds a handler (starting the consumer if needed); returns a function that removes it. */
  add(handler: VmcpEventHandler): () => void;
  /** Stops the consumer and closes its connection; later `add` calls start nothing. */
  close(): Promise<void>;
}

export function createEventSubscription(options: EventSubscriptionOptions): EventSubscription {
  const { log } = options;
  const handlers = new Set<VmcpEventHandler>();
  let started: { worker: Worker; connection: RedisConnection } | undefined;
  let closed = false;

  const handle = async (job: Job) => {
    const parsed = VmcpEventSchema.safeParse(job.data);
    if (!parsed.success) {
      const detail = parsed.error.issues
        .slice(0, 3)
        .map((i) => i.message)
        .join("; ");
      log.warn({ jobId: job.id, detail }, "vmcp-events job does not match the schema; dropped");
      throw new UnrecoverableError("invalid vmcp event");
    }
    for (const handler of [...handlers]) await handler(parsed.data);
  };

  const start = () => {
    const connection = options.connect();
    const worker = new Worker(options.queue.name, handle, { connection, prefix: options.queue.prefix, concurrency: options.concurrency });
    worker.on("error", (err) => log.warn({ err }, "vmcp-events subscription error"));
    worker.on("failed", (job, err) => log.warn({ jobId: job?.id, err: err.message }, "vmcp-events handler failed"));
    started = { worker, connection };
  };

  return {
    add(handler) {
      handlers.add(handler);
      if (!started && !closed) start();
      return () => {
        handlers.delete(handler);
      };
    },
    async close() {
      closed = true;
      if (!started) return;
      const { worker, connection } = started;
      await closeInOrder([() => worker.close(), () => closeRedis(connection)]);
    },
  };
}
