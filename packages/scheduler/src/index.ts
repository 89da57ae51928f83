/*
 * @vmcp-keepalive/scheduler — what an operator or embedder uses: createScheduler (the scheduler
 * program is `main.ts` around it, the admin CLI `cli/main.ts`), its options, the scheduler it
 * returns and the events it emits. The parts behind it are on the `./internal` subpath, for this
 * project's own tests, bench and demo only. test/package-layout.test.ts keeps this list and the
 * README's code map in step.
 */
export { createScheduler, type Scheduler, type SchedulerOptions } from "./create-scheduler.js";
export type { RegistrationEventMap } from "./registrations/registration-events.js";
