import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

export interface BasicAuthCredentials {
  readonly username: string;
  readonly password: string;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * Checks an HTTP Basic `Authorization` header in constant time (both sides are hashed first so
 * their lengths cannot leak). Answers 401 with a `WWW-Authenticate` challenge and returns false
 * when it does not match. The header's value is never logged.
 */
export function checkBasicAuth(req: IncomingMessage, res: ServerResponse, creds: BasicAuthCredentials, realm: string): boolean {
  const header = req.headers.authorization ?? "";
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  const given = match?.[1] ? Buffer.from(match[1], "base64").toString("utf8") : "";
  const expected = `${creds.username}:${creds.password}`;
  if (match && timingSafeEqual(digest(given), digest(expected))) return true;
  res.writeHead(401, { "www-authenticate": `Basic realm="${realm}", charset="UTF-8"`, "content-type": "text/plain" }).end("authentication required\n");
  return false;
}
