import { runProgram } from "@vmcp-keepalive/runtime";
import { createWorker } from "./create-worker.js";

runProgram({
  name: "vmcp-keepalive-worker",
  role: "worker",
  create: (config, logger, http) => createWorker({ config, logger, http }),
  // In-flight ticks finish within two call timeouts (ping, then the tool); then connections close.
  stopTimeoutMs: (config) => config.keepalive.timeoutMs * 2 + 10_000,
});
