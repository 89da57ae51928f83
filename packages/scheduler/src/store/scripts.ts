import { loadLuaScript } from "@vmcp-keepalive/shared";

/*
 * Session and pair state transitions: one atomic script each (packages/scheduler/lua/), so any
 * number of scheduler processes apply messages and reap concurrently. Keys other than KEYS[] are
 * built from the same prefix (as BullMQ's own scripts do), so a hash-tagged prefix keeps every
 * key of a script in one Redis Cluster slot.
 */
const dir = new URL("../../lua/", import.meta.url);

export const APPLY_REGISTERED = loadLuaScript(dir, "apply-registered-2.lua");
export const APPLY_TOUCHED = loadLuaScript(dir, "apply-touched-1.lua");
export const APPLY_ENDED = loadLuaScript(dir, "apply-ended-2.lua");
export const REAP_SESSION = loadLuaScript(dir, "reap-session-2.lua");
