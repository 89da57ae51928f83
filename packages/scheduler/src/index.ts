export { createScheduler, type Scheduler, type SchedulerOptions } from "./create-scheduler.js";
export { phaseOffset } from "./scheduling/phase-offset.js";
export { createPairScheduler, type PairScheduler } from "./scheduling/pair-scheduler.js";
export { applyMessage, MessageRejectedError, type ApplyResult } from "./registrations/apply-message.js";
export { createSessionReaper, type SessionReaper, type SessionReaperDeps } from "./reaper/session-reaper.js";
