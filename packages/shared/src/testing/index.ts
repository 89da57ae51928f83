export { startMcpTestBackend, type McpTestBackend, type McpTestBackendOptions, type RecordedCall, type BackendMode } from "./mcp-test-backend.js";
export { openBackendSession, callToolOnSession, type OpenedSession } from "./mcp-session.js";
export { startEmbeddedRedis, freePort, type EmbeddedRedis } from "../redis/embedded.js";
export { waitFor, sleep } from "./wait.js";
export { testPrefix, flushPrefix, openVmkConnections, expectNoLeakedConnections, captureLogger } from "./harness.js";
