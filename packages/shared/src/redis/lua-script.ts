import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { RedisConnection } from "./connection.js";

/**
 * A Lua script run by EVALSHA (Redis caches it by SHA after the first EVAL): on NOSCRIPT — a
 * restarted or flushed Redis — it is sent once with EVAL and cached again.
 */
export class LuaScript {
  readonly sha: string;
  constructor(
    /** File name without `-<numKeys>.lua`: how logs and errors name it. */
    readonly name: string,
    readonly numberOfKeys: number,
    readonly source: string,
  ) {
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  async run(redis: RedisConnection, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (keys.length !== this.numberOfKeys) throw new Error(`script ${this.name} takes ${this.numberOfKeys} keys, got ${keys.length}`);
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith("NOSCRIPT")) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

const INCLUDE = /^--- @include "([a-z0-9-]+)"\s*$/gm;

/**
 * Loads `<dir>/<name>-<numKeys>.lua` (the number of KEYS is in the file name, as in BullMQ's
 * commands) and inlines every `--- @include "x"` from `<dir>/includes/x.lua`, each once, includes
 * of includes too.
 */
export function loadLuaScript(dir: URL, fileName: string): LuaScript {
  const match = /^([a-z0-9-]+)-(\d+)\.lua$/.exec(fileName);
  if (!match) throw new Error(`Lua script file ${fileName} is not named <name>-<numKeys>.lua`);
  const seen = new Set<string>();
  const expand = (source: string): string =>
    source.replace(INCLUDE, (_line, include: string) => {
      if (seen.has(include)) return "";
      seen.add(include);
      return expand(readFileSync(new URL(`includes/${include}.lua`, dir), "utf8"));
    });
  return new LuaScript(match[1]!, Number(match[2]), expand(readFileSync(new URL(fileName, dir), "utf8")));
}
