import { ErrorCode, UnrecoverableError, Worker, type Job, type JobJson } from "bullmq";
import type { RedisConnection } from "@vmcp-keepalive/shared";
import { QUEUE_SESSIONS, type QueueLocation } from "@vmcp-keepalive/shared";
import type { ApplyResult } from "./apply-message.js";
import { createMessageHandler, type MessageHandlerDeps } from "./handle-message.js";

/**
 * Job-lock and stall timings of the registration consumer. Applying a message takes
 * milliseconds, and its lock is renewed every half lock while it runs; a message a killed
 * scheduler held is handed on once the lock expired and two stall checks saw it:
 * 3 s + 2 × 1.5 s = 6 s at most (BullMQ's defaults, 30 s and 30 s, made it up to 90 s). A
 * message may stall several times (schedulers killed one after another) before it is given up.
 */
export const REGISTRATION_JOB_TIMINGS = { lockDuration: 3_000, stalledInterval: 1_500, maxStalledCount: 10 } as const;

/**
 * BullMQ's codes for "this consumer no longer holds the job's lock" when it completes or fails a
 * job (`moveToFinished`): the lock expired and the job was redelivered, to this or another
 * scheduler. Harmless here: each delivery applies the message under the session mutex, and a
 * repeated message is a sequence-checked duplicate that changes nothing.
 */
const LOST_LOCK_CODES: ReadonlySet<unknown> = new Set([ErrorCode.JobLockNotExist, ErrorCode.JobLockMismatch]);

/** Jobs whose stored `data` was not JSON, with the parser's complaint. */
const unparsable = new WeakMap<Job, string>();

/**
 * A BullMQ Worker that survives a job whose `data` is not JSON (a producer other than BullMQ's JS
 * client wrote it): BullMQ parses `data` before the processor runs, and a parse error there would
 * leave the job active until it stalls, then again, forever. Such a job gets `null` data and is
 * remembered, so the processor fails it once as `invalid_json`.
 */
class SessionMessageWorker extends Worker {
  protected override createJob(data: JobJson, jobId: string): Job {
    try {
      return super.createJob(data, jobId);
    } catch (err) {
      const job = super.createJob({ ...data, data: "null" }, jobId);
      unparsable.set(job, (err as Error).message);
      return job;
    }
  }
}

/**
 * Consumes `vmcp-sessions`. A message that can never be applied (bad JSON, too large, schema
 * violation, unknown backend) fails its job at once with an UnrecoverableError whose message
 * names the problem (visible in Bull Board's failed list), is logged and counted, and never
 * affects other messages. Transient errors (Redis) throw normally and BullMQ retries.
 */
export function createRegistrationConsumer(
  deps: MessageHandlerDeps & {
    readonly connection: RedisConnection;
    /** Where `vmcp-sessions` lives (`keys.sessionsQueue`). @defaultValue `vmcp-sessions` under `redis.prefix` */
    readonly queue?: QueueLocation;
    /** Errors of the consumer's connection (Redis unreachable, refused, TLS): the process's Redis health, logged once per cause. @defaultValue logged each time */
    readonly onRedisError?: (err: Error) => void;
  },
): Worker {
  const { config, log } = deps;
  const queue = deps.queue ?? { name: QUEUE_SESSIONS, prefix: config.redis.prefix };
  const handler = createMessageHandler(deps);

  const worker = new SessionMessageWorker(
    queue.name,
    async (job: Job): Promise<ApplyResult> => {
      const ref = { source: "queue", id: job.id } as const;
      const notJson = unparsable.get(job);
      const outcome = notJson !== undefined ? handler.reject(ref, "invalid_json", `job data is not valid JSON: ${notJson}`) : await handler.handle(job.data, ref);
      // Fails the job at once (no retry), its reason visible in Bull Board's failed list.
      if (!outcome.ok) throw new UnrecoverableError(`${outcome.reason}: ${outcome.detail}`);
      return outcome.result;
    },
    {
      connection: deps.connection,
      prefix: queue.prefix,
      concurrency: config.registration.concurrency,
      autorun: false,
      removeOnComplete: { count: 1_000 },
      removeOnFail: { count: 5_000 },
      ...REGISTRATION_JOB_TIMINGS,
    },
  );
  // A lock renewal that fails (the job was redelivered while this delivery still ran) comes as a
  // `lockRenewalFailed` event with the job ids, followed in the same tick by one plain Error per
  // id whose only mark is its text. The event is logged; the plain Errors of that tick are
  // counted off instead of matching BullMQ's wording.
  let renewalErrorsExpected = 0;
  worker.on("lockRenewalFailed", (jobIds: string[]) => {
    log.warn({ jobIds, queue: QUEUE_SESSIONS }, "registration message lock could not be renewed: the job was redelivered; harmless, a repeated message is a sequence-checked duplicate");
    renewalErrorsExpected += jobIds.length;
    setImmediate(() => (renewalErrorsExpected = 0));
  });
  worker.on("error", (err: Error & { code?: unknown }) => {
    if (LOST_LOCK_CODES.has(err.code)) {
      log.warn({ err, queue: QUEUE_SESSIONS }, "registration message lock lost before it finished: the job was redelivered; harmless, a repeated message is a sequence-checked duplicate");
    } else if (renewalErrorsExpected > 0 && err.code === undefined) {
      renewalErrorsExpected--;
    } else if (deps.onRedisError) {
      deps.onRedisError(err);
    } else {
      log.error({ err }, "registration consumer error");
    }
  });
  return worker;
}
