/**
 * The redis-server settings vmcp-keepalive ships: in the embedded server of the dev command, the
 * compose files and the Kubernetes manifests (a test holds them to this list). Each one is there
 * because `pnpm bench` measures that it pays (docs/benchmarks.md, "Redis settings"):
 *
 * - `hash-max-listpack-value 1024`: a pair's pending BullMQ job is a hash whose options JSON is
 *   longer than Redis' default 64-byte limit, so Redis keeps it as a hashtable; at 1024 it stays a
 *   compact listpack. Fewer bytes per pair, at no measurable Redis CPU per keepalive.
 */
export const REDIS_SERVER_SETTINGS: Readonly<Record<string, string>> = {
  "hash-max-listpack-value": "1024",
};

/** {@link REDIS_SERVER_SETTINGS} as redis-server command-line arguments (`--name value`). */
export function redisServerSettingsArgs(): string[] {
  return Object.entries(REDIS_SERVER_SETTINGS).flatMap(([name, value]) => [`--${name}`, value]);
}
