import type { Redis } from "ioredis";

/** Every key on the server (this run's tests share it; each uses its own prefix) with its value, whatever its type, as one text. */
export async function dumpRedis(redis: Redis): Promise<string> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      let value: unknown;
      if (type === "string") value = await redis.get(key);
      else if (type === "hash") value = await redis.hgetall(key);
      else if (type === "list") value = await redis.lrange(key, 0, -1);
      else if (type === "set") value = await redis.smembers(key);
      else if (type === "zset") value = await redis.call("ZRANGE", key, "0", "-1", "WITHSCORES");
      else if (type === "stream") value = await redis.xrange(key, "-", "+");
      else value = `<${type}>`;
      out.push(`${key} ${type} ${JSON.stringify(value)}`);
    }
  } while (cursor !== "0");
  return out.join("\n");
}
