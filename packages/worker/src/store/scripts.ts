import { loadLuaScript } from "@vmcp-keepalive/shared";

/*
 * The scripts of one keepalive tick (packages/worker/lua/). Where the pair and its backend share a
 * node, one script begins a tick (pair lock, pair, breaker) and one finishes it (outcome, breaker
 * and fallback accounting, lock release): two of our round trips per keepalive besides BullMQ's.
 * On a Redis Cluster the backend hash has a slot of its own (one breaker for the whole cluster),
 * so each step runs as its pair half and its backend half.
 */
const dir = new URL("../../lua/", import.meta.url);

export const BEGIN_TICK = loadLuaScript(dir, "begin-tick-3.lua");
export const FINISH_TICK = loadLuaScript(dir, "finish-tick-3.lua");

export const BEGIN_PAIR = loadLuaScript(dir, "begin-pair-2.lua");
export const BEGIN_BREAKER = loadLuaScript(dir, "begin-breaker-1.lua");
export const FINISH_PAIR = loadLuaScript(dir, "finish-pair-2.lua");
export const FINISH_BREAKER = loadLuaScript(dir, "finish-breaker-1.lua");
