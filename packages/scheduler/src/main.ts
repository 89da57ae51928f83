import { runProgram } from "@vmcp-keepalive/runtime";
import { createScheduler } from "./create-scheduler.js";

runProgram({
  name: "vmcp-keepalive-scheduler",
  role: "scheduler",
  create: (config, logger, http) => createScheduler({ config, logger, http }),
});
