import { parseArgs } from "node:util";
import { ID_PATTERN, ID_RULE } from "@vmcp-keepalive/shared";
import { parseDuration, UsageError } from "@vmcp-keepalive/runtime";

export const CLI_USAGE = `usage: vmcp-keepalive <command> [options]

commands:
  register --session ID --backend BACKEND_ID[=BACKEND_SESSION_ID] [--backend ...]
           [--protocol-version V] [--ttl DURATION] [--max-lifetime DURATION]
      publish session.registered to vmcp-sessions (no =SESSION_ID ⇒ a stateless backend session)
  touch --session ID        publish session.touched
  end --session ID          publish session.ended
  status [--json]           pairs with their last keepalive outcome
  acl                       Redis ACL users (ACL file lines) for the config's prefix, mode and
                            shards: vmcp, scheduler, worker, operator; each password from
                            VMK_ACL_<ROLE>_PASSWORD (written only as its SHA-256)

every command takes --config FILE (or KEEPALIVE_CONFIG=FILE)`;

export type CliCommand =
  | {
      readonly command: "register";
      readonly config: string | undefined;
      readonly sessionId: string;
      readonly backends: readonly { backendId: string; backendSessionId: string | undefined }[];
      readonly protocolVersion: string | undefined;
      readonly ttlMs: number;
      readonly maxLifetimeMs: number | undefined;
    }
  | { readonly command: "touch" | "end"; readonly config: string | undefined; readonly sessionId: string }
  | { readonly command: "status"; readonly config: string | undefined; readonly json: boolean }
  | { readonly command: "acl"; readonly config: string | undefined }
  | { readonly command: "help" };

function checkId(what: string, value: string): string {
  if (!ID_PATTERN.test(value)) throw new UsageError(`${what} ${JSON.stringify(value)} is invalid: must be ${ID_RULE}`);
  return value;
}

function duration(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined || ms < 1_000) throw new UsageError(`--${flag} ${JSON.stringify(value)} is not a duration of at least 1s (e.g. 30m, 300s)`);
  return ms;
}

/** Parses the admin CLI's arguments. Throws {@link UsageError} naming the bad argument. */
export function parseCli(argv: readonly string[]): CliCommand {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") return { command: "help" };
  const options = {
    config: { type: "string" },
    session: { type: "string" },
    backend: { type: "string", multiple: true },
    "protocol-version": { type: "string" },
    ttl: { type: "string" },
    "max-lifetime": { type: "string" },
    json: { type: "boolean" },
  } as const;
  let values: ReturnType<typeof parseArgs<{ options: typeof options; args: string[]; strict: true }>>["values"];
  try {
    ({ values } = parseArgs({ args: rest, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
  const allowed: Record<string, readonly string[]> = {
    register: ["config", "session", "backend", "protocol-version", "ttl", "max-lifetime"],
    touch: ["config", "session"],
    end: ["config", "session"],
    status: ["config", "json"],
    acl: ["config"],
  };
  const allow = allowed[command];
  if (!allow) throw new UsageError(`unknown command ${JSON.stringify(command)} (expected register, touch, end, status or acl)`);
  for (const key of Object.keys(values)) {
    if (!allow.includes(key)) throw new UsageError(`${command}: option --${key} does not apply to this command`);
  }
  const needSession = () => {
    if (!values.session) throw new UsageError(`${command}: --session ID is required`);
    return checkId("--session", values.session);
  };
  switch (command) {
    case "register": {
      const sessionId = needSession();
      const specs = values.backend ?? [];
      if (specs.length === 0) throw new UsageError("register: at least one --backend BACKEND_ID[=BACKEND_SESSION_ID] is required");
      const backends = specs.map((spec) => {
        const eq = spec.indexOf("=");
        const backendId = checkId("--backend id", eq < 0 ? spec : spec.slice(0, eq));
        const backendSessionId = eq < 0 ? undefined : spec.slice(eq + 1);
        if (backendSessionId !== undefined && !/^[\x21-\x7E]{1,512}$/.test(backendSessionId)) {
          throw new UsageError(`--backend ${JSON.stringify(spec)}: the backend session id must be 1-512 visible ASCII characters`);
        }
        return { backendId, backendSessionId };
      });
      const pv = values["protocol-version"];
      if (pv !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(pv)) throw new UsageError(`--protocol-version ${JSON.stringify(pv)} must look like 2025-06-18`);
      return {
        command,
        config: values.config,
        sessionId,
        backends,
        protocolVersion: pv,
        ttlMs: duration("ttl", values.ttl, 30 * 60_000),
        maxLifetimeMs: values["max-lifetime"] === undefined ? undefined : duration("max-lifetime", values["max-lifetime"], 0),
      };
    }
    case "touch":
    case "end":
      return { command, config: values.config, sessionId: needSession() };
    case "acl":
      return { command, config: values.config };
    default:
      return { command: "status", config: values.config, json: values.json ?? false };
  }
}
