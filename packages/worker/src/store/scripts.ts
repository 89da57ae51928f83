import { loadLuaScript } from "@vmcp-keepalive/shared";

/*
 * The scripts of one keepalive tick (packages/worker/lua/). Where the pair and its backend share a
 * node, the pair and the backend's breaker/method state are read in one script and the outcome,
 * breaker and fallback accounting written in one script; on one lock node the pair lock rides in
 * them too (the -locked/-release variants), so a keepalive costs two of our round trips plus
 * BullMQ's own. On a Redis Cluster the backend hash has a slot of its own (one breaker for the
 * whole cluster), so each step runs as its pair half and its backend half: four round trips.
 */
const dir = new URL("../../lua/", import.meta.url);

export const BEGIN_TICK = loadLuaScript(dir, "begin-tick-2.lua");
export const BEGIN_TICK_LOCKED = loadLuaScript(dir, "begin-tick-locked-3.lua");
export const FINISH_TICK = loadLuaScript(dir, "finish-tick-2.lua");
export const FINISH_TICK_RELEASE = loadLuaScript(dir, "finish-tick-release-3.lua");

export const BEGIN_PAIR = loadLuaScript(dir, "begin-pair-1.lua");
export const BEGIN_PAIR_LOCKED = loadLuaScript(dir, "begin-pair-locked-2.lua");
export const BEGIN_BREAKER = loadLuaScript(dir, "begin-breaker-1.lua");
export const FINISH_PAIR = loadLuaScript(dir, "finish-pair-1.lua");
export const FINISH_PAIR_RELEASE = loadLuaScript(dir, "finish-pair-release-2.lua");
export const FINISH_BREAKER = loadLuaScript(dir, "finish-breaker-1.lua");
