import { loadLuaScript } from "@vmcp-keepalive/shared";

/*
 * The scripts of one keepalive tick (packages/worker/lua/): the pair and the backend's
 * breaker/method state are read in one script and the outcome, breaker and fallback accounting
 * written in one script. On one lock node the pair lock rides in them too (the -locked/-release
 * variants), so a keepalive costs two of our round trips plus BullMQ's own.
 */
const dir = new URL("../../lua/", import.meta.url);

export const BEGIN_TICK = loadLuaScript(dir, "begin-tick-2.lua");
export const BEGIN_TICK_LOCKED = loadLuaScript(dir, "begin-tick-locked-3.lua");
export const FINISH_TICK = loadLuaScript(dir, "finish-tick-2.lua");
export const FINISH_TICK_RELEASE = loadLuaScript(dir, "finish-tick-release-3.lua");
export const RELEASE_LOCK = loadLuaScript(dir, "release-lock-1.lua");
