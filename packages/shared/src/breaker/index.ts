export { BACKEND_FIELDS, decodeBackend, type BackendState, type BreakerState, type LearnedMethod, type SwitchReason } from "./backend-state.js";
export {
  createBackendBreaker,
  jittered,
  type BackendBreaker,
  type TickDecision,
  type BeginTickOptions,
  type FinishTickInput,
  type FinishTickResult,
  type BreakerOp,
  type MethodOp,
  type BreakerTransition,
  type MethodTransition,
} from "./backend-breaker.js";
export { BEGIN_TICK, FINISH_TICK } from "./scripts.js";
