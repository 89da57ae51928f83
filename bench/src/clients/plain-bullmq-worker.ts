/**
 * The floor under the keepalive system: a BullMQ Worker as a user without this project would run
 * it on the same job schedulers — a processor that does nothing, the same concurrency, retention
 * and events cap as our worker, BullMQ's defaults for everything else. What Redis spends per job
 * here is BullMQ's own cost; what we add on top of it is ours. Runs until SIGTERM.
 *
 *   node plain-bullmq-worker.js --url redis://… --prefix P --concurrency N
 */
import { parseArgs } from "node:util";
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { KEEPALIVE_JOB_OPTIONS, QUEUE_KEEPALIVE } from "@vmcp-keepalive/shared";

const { values } = parseArgs({ options: { url: { type: "string" }, prefix: { type: "string" }, concurrency: { type: "string" } }, strict: true });
const concurrency = Number(values.concurrency ?? "32");
if (!values.url || !values.prefix || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write("usage: plain-bullmq-worker --url redis://HOST:PORT --prefix PREFIX [--concurrency N]\n");
  process.exit(2);
}
const connection = new Redis(values.url, { maxRetriesPerRequest: null });
const worker = new Worker(QUEUE_KEEPALIVE, async () => {}, {
  connection,
  prefix: values.prefix,
  concurrency,
  removeOnComplete: KEEPALIVE_JOB_OPTIONS.removeOnComplete,
  removeOnFail: KEEPALIVE_JOB_OPTIONS.removeOnFail,
});
worker.on("error", (err) => process.stderr.write(`plain worker: ${err.message}\n`));
await worker.waitUntilReady();
process.stdout.write("plain worker started\n");
const stop = () => {
  void worker.close().finally(() => {
    connection.disconnect();
    process.exit(0);
  });
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
