import { Queue } from "bullmq";
import { inject } from "vitest";
import { expectNoLeakedConnections, flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createSessionPublisher, type SessionPublisher } from "../../src/client/session-publisher.js";
import { QUEUE_SESSIONS } from "../../src/names.js";
import { closeRedis, createRedis, type RedisConnection } from "../../src/redis/connection.js";

/** A lifecycle message as it sits in `vmcp-sessions`. */
export interface QueuedMessage {
  readonly type: string;
  readonly sessionId: string;
  readonly sequence: number;
  readonly occurredAt: string;
  readonly backendIds?: string[];
  readonly backends?: { backendId: string; backendSessionId?: string; protocolVersion?: string }[];
}

/**
 * A real `vmcp-sessions` queue under a fresh prefix on the run's Redis, the publisher the client
 * uses to write to it, and its messages in sequence order. `close` removes every trace and fails
 * on a leaked connection.
 */
export interface SessionsQueue {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly redis: RedisConnection;
  readonly publisher: SessionPublisher;
  messages(sessionId?: string): Promise<QueuedMessage[]>;
  close(): Promise<void>;
}

export function openSessionsQueue(label: string): SessionsQueue {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix(label);
  const redis = createRedis(redisUrl, "client", `vmk-test@${prefix}`);
  const publisher = createSessionPublisher({ connection: redis, prefix, replicaId: "replica-a" });
  const queue = new Queue(QUEUE_SESSIONS, { connection: redis, prefix });
  return {
    redisUrl,
    prefix,
    redis,
    publisher,
    async messages(sessionId) {
      const jobs = await queue.getJobs(["waiting", "delayed", "prioritized", "active", "completed", "failed"]);
      return jobs
        .map((j) => j.data as QueuedMessage)
        .filter((m) => sessionId === undefined || m.sessionId === sessionId)
        .sort((a, b) => a.sequence - b.sequence);
    },
    async close() {
      await publisher.close();
      await queue.close();
      await closeRedis(redis);
      await flushPrefix(redisUrl, prefix);
      await expectNoLeakedConnections(redisUrl, (n) => n.endsWith(`@${prefix}`));
    },
  };
}
