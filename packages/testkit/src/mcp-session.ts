import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

export interface OpenedSession {
  readonly sessionId: string;
  readonly protocolVersion: string;
}

/** Opens a backend session the way a vMCP does (`initialize`), then lets the connection go. */
export async function openBackendSession(url: string, headers: Record<string, string> = {}): Promise<OpenedSession> {
  const client = new Client({ name: "vmk-test-vmcp", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  const sessionId = transport.sessionId;
  const protocolVersion = transport.protocolVersion;
  if (!sessionId || !protocolVersion) throw new Error(`backend at ${url} returned no session id`);
  // close() drops the local transport only; the backend session lives on until its idle TTL.
  await client.close();
  return { sessionId, protocolVersion };
}

/**
 * Calls a tool on an existing backend session (no initialize), as the vMCP does when its user
 * comes back. Throws on HTTP errors (404 once the session expired).
 */
export async function callToolOnSession(
  url: string,
  session: OpenedSession,
  tool: string,
  args: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<{ isError: boolean; text: string }> {
  const client = new Client({ name: "vmk-test-vmcp", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { sessionId: session.sessionId, requestInit: { headers } });
  transport.setProtocolVersion(session.protocolVersion);
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: tool, arguments: args });
    const content = (result.content ?? []) as { type: string; text?: string }[];
    return { isError: result.isError === true, text: content.map((c) => c.text ?? "").join("") };
  } finally {
    await client.close();
  }
}
