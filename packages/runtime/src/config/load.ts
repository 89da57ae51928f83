import { readFileSync } from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { describeIssues, formatIssuePath } from "@vmcp-keepalive/shared";
import { KeepaliveConfigSchema } from "./schema.js";
import type { BackendConfig, DeepReadonly, KeepaliveConfig } from "./types.js";

/** A config that cannot be used. `problems` are `key: what is wrong` lines. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Environment variables that override config keys. They are applied before validation, so a bad
 * value is reported under the variable's name.
 */
export const ENV_OVERRIDES = {
  REDIS_URL: ["redis", "url"],
  REDIS_PREFIX: ["redis", "prefix"],
  LOG_LEVEL: ["log", "level"],
  KEEPALIVE_CONCURRENCY: ["keepalive", "concurrency"],
  HTTP_HOST: ["http", "host"],
  HTTP_PORT: ["http", "port"],
  ADMIN_USERNAME: ["admin", "username"],
  ADMIN_PASSWORD: ["admin", "password"],
} as const satisfies Record<string, readonly [string, string]>;

/** Keys whose env override is a number when it looks like one (else zod reports the variable). */
const NUMERIC_ENV_KEYS = new Set(["concurrency", "port"]);

const INTERPOLATION_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` and `${VAR:-default}` in every string value; unset variables are problems. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv, path: PropertyKey[], problems: string[]): unknown {
  if (typeof value === "string") {
    return value.replace(INTERPOLATION_RE, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== "") return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${formatIssuePath(path, "(root)")}: environment variable ${name} is not set`);
      return "";
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...path, i], problems));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...path, k], problems)]));
  }
  return value;
}

function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const origins = new Map<string, string>();
  for (const [name, [section, key]] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    const existing = raw[section];
    const target: Record<string, unknown> = existing !== null && typeof existing === "object" && !Array.isArray(existing) ? { ...(existing as Record<string, unknown>) } : {};
    target[key] = NUMERIC_ENV_KEYS.has(key) && /^\d+$/.test(value) ? Number(value) : value;
    raw[section] = target;
    origins.set(`${section}.${key}`, name);
  }
  return origins;
}

function deepFreeze<T>(value: T): DeepReadonly<T> {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value as DeepReadonly<T>;
}

/**
 * Validates a config document (already YAML-parsed or a plain object) with env interpolation and
 * overrides, and returns the frozen typed config. Throws {@link ConfigError} naming every bad key.
 */
export function parseConfig(document: unknown, env: NodeJS.ProcessEnv = {}, source = "<inline>"): KeepaliveConfig {
  if (document === null || document === undefined) document = {};
  if (typeof document !== "object" || Array.isArray(document)) {
    throw new ConfigError(source, ["(root): must be a mapping of keys (redis, keepalive, backends, ...)"]);
  }
  const problems: string[] = [];
  const raw = interpolate(document, env, [], problems) as Record<string, unknown>;
  const origins = applyEnvOverrides(raw, env);
  const result = KeepaliveConfigSchema.safeParse(raw);
  if (!result.success) {
    const labelOf = (key: string) => {
      const origin = origins.get(key);
      return origin ? `${origin} (${key})` : key;
    };
    problems.push(...describeIssues(result.error.issues, { noun: "key", root: "(root)", labelOf, quoteUnknown: true }));
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);
  return deepFreeze({ ...result.data, source });
}

/** Reads and validates a YAML config file. Throws {@link ConfigError}. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv): KeepaliveConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : "";
    throw new ConfigError(path, [`not valid YAML${where}: ${(err as Error).message.split("\n")[0]}`]);
  }
  return parseConfig(document, env, path);
}

/** Looks up a backend by id. */
export function findBackend(config: KeepaliveConfig, backendId: string): BackendConfig | undefined {
  return config.backends.find((b) => b.id === backendId);
}
