import { closeRedis, STREAM_MESSAGE_FIELD, STREAM_SCHEDULER_GROUP, type RedisConnection, type RejectionReason } from "@vmcp-keepalive/shared";
import type { Logger } from "@vmcp-keepalive/runtime";
import { createMessageHandler, type MessageHandlerDeps, type MessageRef } from "./handle-message.js";
import { KeyedSerializer, messageOf, parseAutoClaimReply, parsePendingCounts, parseReadReply, Slots, truncateUtf8, type StreamEntry } from "./stream-entries.js";

/** Why an entry was moved to the rejected stream: a reason of the message itself, or too many failed deliveries. */
export type StreamRejectionReason = RejectionReason | "delivery_limit";

/** Most entries one XREADGROUP or XAUTOCLAIM asks for. */
const MAX_BATCH = 500;
/**
 * Server-side BLOCK of one read, and so how long `stop` waits for the read under way: short, so
 * that stopping is quick without cutting a read whose entries would then wait `claim_idle` for
 * a claim (an idle scheduler pays four empty reads a second for it).
 */
const BLOCK_MS = 250;
/** Pause after a read that failed (Redis away), so an outage is not a busy loop. */
const ERROR_PAUSE_MS = 1_000;
/** Consumers of the group with nothing pending and idle this long are deleted (schedulers that are gone). */
const STALE_CONSUMER_MS = 3_600_000;
/** Every this many claim passes, stale consumers are looked for. */
const STALE_CHECK_EVERY = 300;
/** Last failure messages remembered for the `detail` of a given-up entry. */
const MAX_REMEMBERED_FAILURES = 10_000;

export interface StreamConsumerOptions extends MessageHandlerDeps {
  /** Acknowledgements, claims, the rejected stream. */
  readonly redis: RedisConnection;
  /** Only for XREADGROUP BLOCK; owned by the consumer and closed by `stop`. */
  readonly blocking: RedisConnection;
  /** This scheduler's name in the group (unique per process). */
  readonly consumer: string;
  /** Errors reading the stream (Redis unreachable, refused, TLS): the process's Redis health, logged once per cause. @defaultValue logged each time */
  readonly onRedisError?: (err: unknown) => void;
  /** `keys.sessionMessagesStream`. */
  readonly stream: string;
  /** `keys.sessionMessagesRejectedStream` (same hash slot as `stream`). */
  readonly rejectedStream: string;
  /** @defaultValue {@link STREAM_SCHEDULER_GROUP} */
  readonly group?: string;
  /** Entries applied at once. */
  readonly concurrency: number;
  /** Idle time after which a pending entry is claimed (`streams.claim_idle`). */
  readonly claimIdleMs: number;
  /** Deliveries after which a failing entry is given up (`streams.max_deliveries`). */
  readonly maxDeliveries: number;
  /** `MAXLEN ~` of the rejected stream (`streams.rejected_max_len`). */
  readonly rejectedMaxLen: number;
  /** How often pending entries are looked at. @defaultValue min(1 s, claimIdleMs / 2) */
  readonly claimIntervalMs?: number;
}

export interface StreamConsumer {
  /** Creates the group (idempotent) and starts reading and claiming. */
  start(): Promise<void>;
  /** Stops reading, waits for the entries under way, acknowledges them, closes the blocking connection. Idempotent. */
  stop(): Promise<void>;
  /** Reading, and its connection is up. */
  isRunning(): boolean;
}

const errorCode = (err: unknown) => (err instanceof Error ? err.message.split(" ", 1)[0] : undefined);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Reads the ingress stream (`<sessions prefix>:session-messages`) as one member of the
 * schedulers' consumer group and applies each entry through the same handler as the
 * `vmcp-sessions` queue. An entry leaves the stream once it was applied (XACK + XDEL, batched),
 * or rejected (copied to the rejected stream with its reason, then XACK + XDEL), or given up
 * after `maxDeliveries` failed deliveries. A failed entry stays pending: after `claimIdleMs` it
 * is claimed again (XAUTOCLAIM) — by this scheduler or another, which is also how a killed
 * scheduler's entries are taken over. The group is created if missing, at start and whenever
 * Redis says it is gone (a FLUSHALL), so the stream heals by itself.
 */
export function createStreamConsumer(options: StreamConsumerOptions): StreamConsumer {
  const { redis, blocking, consumer, stream, rejectedStream, log: parentLog } = options;
  const group = options.group ?? STREAM_SCHEDULER_GROUP;
  const log: Logger = parentLog.child({ component: "stream-consumer", stream, consumer });
  const handler = createMessageHandler(options);
  const events = options.events;
  const slots = new Slots(options.concurrency);
  const sessions = new KeyedSerializer();
  /** Entries being handled here: a claim pass skips them. */
  const inFlight = new Set<string>();
  /** The last failure of an entry here, for the detail of its give-up. */
  const failures = new Map<string, string>();
  const claimIntervalMs = options.claimIntervalMs ?? Math.min(1_000, Math.floor(options.claimIdleMs / 2));

  let running = false;
  let reader: Promise<void> | undefined;
  let claimTimer: NodeJS.Timeout | undefined;
  let claiming: Promise<void> | undefined;
  let claimPasses = 0;

  // Acknowledgements are batched: every entry finished in one turn of the event loop leaves the
  // stream in one MULTI (XACK, XDEL, and XADD to the rejected stream for rejected ones).
  let acks: string[] = [];
  let rejections: { entry: StreamEntry; reason: StreamRejectionReason; detail: string }[] = [];
  let flushScheduled = false;
  let flushing: Promise<void> = Promise.resolve();

  const ensureGroup = async () => {
    try {
      // From 0, not $: acknowledged entries are deleted, so whatever the stream holds is not
      // applied yet — including what vMCPs added before any scheduler ran or after a FLUSHALL.
      await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM");
      log.info({ group }, "ingress stream consumer group created");
    } catch (err) {
      if (errorCode(err) !== "BUSYGROUP") throw err;
    }
  };

  const flush = async () => {
    flushScheduled = false;
    const ids = acks;
    const rejected = rejections;
    acks = [];
    rejections = [];
    if (ids.length === 0 && rejected.length === 0) return;
    const all = [...ids, ...rejected.map((r) => r.entry.id)];
    const multi = redis.multi();
    for (const r of rejected) {
      const payload = r.entry.fields?.[STREAM_MESSAGE_FIELD] ?? "";
      multi.xadd(
        rejectedStream,
        "MAXLEN",
        "~",
        options.rejectedMaxLen,
        "*",
        "message",
        truncateUtf8(payload, options.config.registration.maxMessageBytes),
        "reason",
        r.reason,
        "detail",
        r.detail,
        "id",
        r.entry.id,
      );
    }
    multi.xack(stream, group, ...all);
    multi.xdel(stream, ...all);
    try {
      await multi.exec();
    } catch (err) {
      // Still pending: claimed again after claimIdleMs and applied again, a sequence-checked duplicate.
      log.warn({ err, entries: all.length }, "ingress stream entries could not be acknowledged; they are redelivered");
    }
  };

  const scheduleFlush = () => {
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(() => {
      flushing = flushing.then(flush);
    });
  };

  const finish = (entry: StreamEntry, rejection?: { reason: StreamRejectionReason; detail: string }) => {
    if (rejection) rejections.push({ entry, ...rejection });
    else acks.push(entry.id);
    failures.delete(entry.id);
    scheduleFlush();
  };

  /** Handles one entry; never throws. Holds a slot (taken by the caller) until done. */
  const handleEntry = (entry: StreamEntry): Promise<void> => {
    inFlight.add(entry.id);
    const ref: MessageRef = { source: "stream", id: entry.id };
    const done = () => {
      inFlight.delete(entry.id);
      slots.release();
    };
    if (entry.fields === null) {
      // Deleted while pending (by hand, or a MAXLEN on the ingress stream): nothing to apply.
      finish(entry);
      done();
      return Promise.resolve();
    }
    const found = messageOf(entry, STREAM_MESSAGE_FIELD);
    const parsed = found.ok ? handler.parse(found.payload, ref) : handler.reject(ref, "invalid_message", found.detail);
    if (!parsed.ok) {
      events.emit("streamEntry", { result: "rejected" });
      finish(entry, parsed);
      done();
      return Promise.resolve();
    }
    const message = parsed.message;
    return sessions
      .run(message.sessionId, async () => {
        try {
          const outcome = await handler.apply(message, ref);
          events.emit("streamEntry", { result: outcome.ok ? "applied" : "rejected" });
          finish(entry, outcome.ok ? undefined : outcome);
        } catch (err) {
          // Left pending: claimed again after claimIdleMs, given up after maxDeliveries.
          events.emit("streamEntry", { result: "failed" });
          if (failures.size >= MAX_REMEMBERED_FAILURES) failures.delete(failures.keys().next().value!);
          failures.set(entry.id, (err as Error).message);
          log.warn({ err, entryId: entry.id, sessionId: message.sessionId, type: message.type }, "ingress stream entry failed; it is tried again after streams.claim_idle");
        }
      })
      .finally(done);
  };

  const giveUp = (entry: StreamEntry, deliveries: number) => {
    const last = failures.get(entry.id);
    const detail = `failed ${deliveries - 1} deliveries (streams.max_deliveries ${options.maxDeliveries})${last ? `; last error here: ${last}` : ""}`;
    log.error({ entryId: entry.id, deliveries, detail }, "ingress stream entry given up: moved to the rejected stream");
    events.emit("streamEntry", { result: "given_up" });
    finish(entry, { reason: "delivery_limit", detail });
  };

  const read = async () => {
    // Read once a quarter of the slots is free, not on every freed slot: one XREADGROUP per
    // entry or two would cost a round trip each under load.
    const readAt = Math.ceil(options.concurrency / 4);
    while (running) {
      await slots.whenFree(readAt);
      if (!running) break;
      let entries: StreamEntry[];
      try {
        const reply: unknown = await blocking.xreadgroup("GROUP", group, consumer, "COUNT", Math.min(MAX_BATCH, Math.max(1, slots.free)), "BLOCK", BLOCK_MS, "STREAMS", stream, ">");
        entries = parseReadReply(reply);
      } catch (err) {
        if (!running) break;
        if (errorCode(err) === "NOGROUP") {
          log.warn("ingress stream or its consumer group is gone (a FLUSHALL?); creating it again");
          await ensureGroup().catch((e: unknown) => log.warn({ err: e }, "ingress stream group could not be created yet"));
        } else {
          if (options.onRedisError) options.onRedisError(err);
          else log.warn({ err }, "reading the ingress stream failed; retrying");
          await sleep(ERROR_PAUSE_MS);
        }
        continue;
      }
      for (const entry of entries) {
        await slots.acquire();
        void handleEntry(entry);
      }
    }
  };

  /** One pass over the pending entries idle for claimIdleMs: take them over, apply or give up. */
  const claimPass = async () => {
    let cursor = "0-0";
    do {
      const reply: unknown = await redis.xautoclaim(stream, group, consumer, options.claimIdleMs, cursor, "COUNT", MAX_BATCH);
      const claimed = parseAutoClaimReply(reply);
      cursor = claimed.cursor;
      const entries = claimed.entries.filter((e) => !inFlight.has(e.id));
      if (entries.length === 0) continue;
      events.emit("streamClaimed", { count: entries.length });
      log.info({ entries: entries.length, first: entries[0]!.id }, "claimed pending ingress stream entries");
      // Delivery counts (XAUTOCLAIM counted this claim as one): XPENDING over the claimed range, this consumer only.
      const ids = entries.map((e) => e.id);
      const counts = parsePendingCounts(await redis.xpending(stream, group, "IDLE", 0, ids[0]!, ids[ids.length - 1]!, ids.length + inFlight.size, consumer));
      for (const entry of entries) {
        if (!running) return;
        await slots.acquire();
        inFlight.add(entry.id);
        const deliveries = counts.get(entry.id) ?? 1;
        if (deliveries > options.maxDeliveries) {
          giveUp(entry, deliveries);
          inFlight.delete(entry.id);
          slots.release();
        } else {
          void handleEntry(entry);
        }
      }
    } while (cursor !== "0-0" && running);
    if (++claimPasses % STALE_CHECK_EVERY === 0) await removeStaleConsumers();
  };

  const removeStaleConsumers = async () => {
    const rows = (await redis.xinfo("CONSUMERS", stream, group)) as unknown[];
    for (const row of rows) {
      if (!Array.isArray(row)) continue;
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
      const name = String(info["name"]);
      if (name !== consumer && Number(info["pending"]) === 0 && Number(info["idle"]) > STALE_CONSUMER_MS) {
        await redis.xgroup("DELCONSUMER", stream, group, name);
        log.info({ gone: name }, "removed a consumer of the ingress stream group that has been idle for an hour with nothing pending");
      }
    }
  };

  const scheduleClaim = () => {
    claimTimer = setTimeout(() => {
      claiming = claimPass()
        .catch(async (err: unknown) => {
          if (errorCode(err) === "NOGROUP") await ensureGroup().catch(() => undefined);
          else if (options.onRedisError) options.onRedisError(err);
          else log.warn({ err }, "claiming pending ingress stream entries failed; retrying");
        })
        .finally(() => {
          claiming = undefined;
          if (running) scheduleClaim();
        });
    }, claimIntervalMs);
  };

  let stopping: Promise<void> | undefined;
  return {
    async start() {
      if (running) return;
      await ensureGroup();
      running = true;
      reader = read();
      scheduleClaim();
      log.info({ group, claimIdleMs: options.claimIdleMs, maxDeliveries: options.maxDeliveries, concurrency: options.concurrency }, "ingress stream consumer started");
    },
    isRunning: () => running && blocking.status === "ready",
    stop() {
      stopping ??= (async () => {
        running = false;
        clearTimeout(claimTimer);
        // The read under way returns within BLOCK_MS; past that (Redis away), the connection is cut.
        const cut = setTimeout(() => blocking.disconnect(), BLOCK_MS + 500);
        await reader;
        clearTimeout(cut);
        await claiming;
        await slots.idle();
        await new Promise<void>((resolve) => setImmediate(resolve));
        await flushing;
        await flush();
        await closeRedis(blocking);
      })();
      return stopping;
    },
  };
}
