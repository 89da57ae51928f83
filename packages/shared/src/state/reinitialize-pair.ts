import type { RedisConnection } from "../redis/connection.js";
import type { Keys } from "../redis/keys.js";
import { loadLuaScript } from "../redis/lua-script.js";
import type { PairStatus } from "./pair-state.js";

const REINITIALIZE_PAIR = loadLuaScript(new URL("../../lua/", import.meta.url), "reinitialize-pair-1.lua");

/** Result of storing a re-initialized backend session (see lua/reinitialize-pair-1.lua). */
export type ReinitializeStateResult =
  | { readonly status: "applied"; readonly epoch: number; readonly previousStatus: PairStatus }
  /** No such pair: the session ended, was reaped, or was never registered with this backend. */
  | { readonly status: "unknown" };

/**
 * Stores a re-initialized backend session and bumps the pair epoch (the caller holds the pair
 * lock). Never creates a pair.
 */
export async function reinitializePair(
  redis: RedisConnection,
  keys: Keys,
  pair: { sessionId: string; backendId: string; backendSessionId: string; protocolVersion: string | undefined },
  now: number,
): Promise<ReinitializeStateResult> {
  const reply = (await REINITIALIZE_PAIR.run(redis, [keys.pair(pair.sessionId, pair.backendId)], [pair.backendSessionId, pair.protocolVersion ?? "", now])) as (string | number)[];
  if (reply[0] !== "applied") return { status: "unknown" };
  return { status: "applied", epoch: Number(reply[1]), previousStatus: String(reply[2]) as PairStatus };
}
