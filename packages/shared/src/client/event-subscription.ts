import { UnrecoverableError, Worker, type Job } from "bullmq";
import { readVmcpEvent } from "../events/read-vmcp-event.js";
import type { VmcpEvent } from "../events/vmcp-events.js";
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
 * reaches one replica. A handler that throws fails the job (BullMQ retries it). Events are read the
 * tolerant way (`readVmcpEvent`): fields this client does not know are left out, an event of a type
 * it does not know completes its job without reaching a handler (handlers are typed to the events
 * they can tell apart), and only an event of a known type that breaks its schema is logged and
 * dropped, without retries.
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
    const read = readVmcpEvent(job.data);
    if (read.kind === "unknown_type") {
      // A newer worker's event (docs/contract.md, "Evolution"): expected during an upgrade, not an error.
      log.debug({ jobId: job.id, type: read.type }, "vmcp-events: an event type this client does not know; skipped");
      return;
    }
    if (read.kind === "invalid") {
      log.warn({ jobId: job.id, detail: read.detail }, "vmcp-events job does not match the schema; dropped");
      throw new UnrecoverableError("invalid vmcp event");
    }
    for (const handler of [...handlers]) await handler(read.event);
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
