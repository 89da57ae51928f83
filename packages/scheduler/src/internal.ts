/*
 * @vmcp-keepalive/scheduler/internal — for this project's own tests, bench and demo only: the
 * session store and the pieces of registration, to seed and read pairs without a scheduler
 * process. Not a supported API: it changes whenever the scheduler does. Operators and embedders
 * use the package root (index.ts).
 */
export { createSessionStore, type SessionStore, type PairDecision } from "./store/session-store.js";
export { createPairScheduler, type PairScheduler } from "./scheduling/pair-scheduler.js";
export { applyMessage } from "./registrations/apply-message.js";
export { decidePair } from "./registrations/decide-pair.js";
