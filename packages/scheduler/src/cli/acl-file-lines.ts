import { ACL_ROLES, aclPasswordVariable, aclRules, aclUserLine, keysOf, UsageError, type KeepaliveConfig } from "@vmcp-keepalive/runtime";

/** Shortest role password accepted: the ACL file keeps an unsalted SHA-256 of it. */
export const MIN_ACL_PASSWORD_LENGTH = 16;

/**
 * The Redis ACL file lines of every role for a config (its prefix, mode and shards), each
 * password read from `VMK_ACL_<ROLE>_PASSWORD`. Every variable is checked before anything is
 * returned, so a missing one prints nothing.
 */
export function aclFileLines(config: KeepaliveConfig, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const passwords = ACL_ROLES.map((role) => {
    const variable = aclPasswordVariable(role);
    const password = env[variable] ?? "";
    if (password === "") problems.push(`${variable}: not set (the ${role} user's password)`);
    else if (password.length < MIN_ACL_PASSWORD_LENGTH) problems.push(`${variable}: shorter than ${MIN_ACL_PASSWORD_LENGTH} characters (e.g. openssl rand -hex 24)`);
    return password;
  });
  if (problems.length > 0) throw new UsageError(problems.join("; "));
  return aclRules(keysOf(config), config.redis.mode).map((rules, i) => aclUserLine(rules, passwords[i]!));
}
