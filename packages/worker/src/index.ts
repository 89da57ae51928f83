/*
 * @vmcp-keepalive/worker — what an operator or embedder uses: createWorker (the worker program is
 * `main.ts` around it), its options, the worker it returns and the events it emits. The parts
 * behind it are on the `./internal` subpath, for this project's own tests and bench only.
 * test/package-layout.test.ts keeps this list and the README's code map in step.
 */
export { createWorker, type KeepaliveWorker, type WorkerOptions } from "./create-worker.js";
export type { KeepaliveEventMap } from "./tick/keepalive-events.js";
