/**
 * Why a connection to Redis failed, in one line an operator can act on: the TLS, authentication or
 * network cause, classified on the error's `code` and Redis's error prefix (never on free text),
 * with the original message kept at the end. No stack trace, no secret: TLS and socket errors
 * carry neither passwords nor keys.
 */
export function redisErrorCause(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; lastNodeError?: unknown } | undefined;
  // A Cluster that reaches no node says so; the node's own error says why.
  if (e?.lastNodeError) return redisErrorCause(e.lastNodeError);
  const code = typeof e?.code === "string" ? e.code : "";
  const message = (typeof e?.message === "string" ? e.message : String(err)).split("\n")[0]!;
  const prefix = /^[A-Z]+/.exec(message)?.[0] ?? "";
  switch (code) {
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "CERT_SIGNATURE_FAILURE":
      return `TLS: the server's certificate is not signed by a CA this process trusts (check the CA file, redis.tls.ca_file) [${code}: ${message}]`;
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `TLS: the server's certificate is not for the name connected to (set redis.tls.servername to a name it carries, or connect by that name) [${code}: ${message}]`;
    case "CERT_HAS_EXPIRED":
    case "CERT_NOT_YET_VALID":
      return `TLS: the server's certificate is outside its validity period [${code}]`;
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "EPROTO":
      return `TLS: the server does not answer TLS on this port (a plain port? use redis:// and no redis.tls) [${code}: ${message}]`;
    case "ECONNREFUSED":
      return `connection refused (no Redis listening there) [${message}]`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host not found [${message}]`;
    case "ETIMEDOUT":
      return `connection timed out [${message}]`;
    case "ECONNRESET":
    case "EPIPE":
      return `connection reset by the server (a TLS server that requires a client certificate, set redis.tls.cert_file and key_file? or a TLS port reached without TLS) [${code}]`;
  }
  switch (prefix) {
    case "WRONGPASS":
      return `authentication failed: wrong user name or password [${message}]`;
    case "NOAUTH":
      return `authentication required: the server has a password and none was given [${message}]`;
    case "NOPERM":
      return `permission denied to this user (its ACL rules) [${message}]`;
  }
  return message;
}
