import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

/** A backend session as the demo vMCP holds it: what it registers for keepalive. */
export interface DemoBackendSession {
  readonly sessionId: string;
  readonly protocolVersion: string;
}

/** Initializes a session on the backend the way a vMCP does, then drops the local connection. */
export async function initializeBackendSession(url: string): Promise<DemoBackendSession> {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "vmk-demo-vmcp", version: "1.0.0" });
  await client.connect(transport);
  const session = { sessionId: transport.sessionId ?? "", protocolVersion: transport.protocolVersion ?? "" };
  await client.close();
  if (!session.sessionId) throw new Error(`the backend at ${url} opened no session`);
  return session;
}

/** Calls `echo` on an existing backend session (no initialize): rejects once the session expired. */
export async function echoOnSession(url: string, session: DemoBackendSession, text: string): Promise<string> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { sessionId: session.sessionId });
  transport.setProtocolVersion(session.protocolVersion);
  const client = new Client({ name: "vmk-demo-vmcp", version: "1.0.0" });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: "echo", arguments: { text } });
    return JSON.stringify(result.content);
  } finally {
    await client.close();
  }
}
