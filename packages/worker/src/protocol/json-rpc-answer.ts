/** The backend's answer to our one JSON-RPC request. */
export type JsonRpcAnswer = { readonly kind: "result"; readonly result: Record<string, unknown> } | { readonly kind: "error"; readonly code: number; readonly message: string };

/** An answer that is not the JSON-RPC response it should be (wrong shape, bad JSON, no answer). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isJsonRpc = (v: unknown): v is Record<string, unknown> => isObject(v) && v["jsonrpc"] === "2.0";

/**
 * The response to request `id` in one parsed JSON-RPC payload (a message or a batch), or
 * undefined when the payload holds none (a notification, or a request of the server's own).
 * An error with `id: null` is taken as ours: the backend could not read the id of the only request
 * we sent on this exchange.
 */
export function answerIn(payload: unknown, id: string): JsonRpcAnswer | undefined {
  if (Array.isArray(payload)) {
    for (const message of payload) {
      const answer = answerIn(message, id);
      if (answer) return answer;
    }
    return undefined;
  }
  if (!isJsonRpc(payload)) throw new ProtocolError("answer is not a JSON-RPC 2.0 message");
  const error = payload["error"];
  if (payload["id"] === id || (payload["id"] === null && error !== undefined)) {
    if (isObject(payload["result"])) return { kind: "result", result: payload["result"] };
    if (isObject(error) && typeof error["code"] === "number") return { kind: "error", code: error["code"], message: String(error["message"] ?? "").slice(0, 200) };
    throw new ProtocolError("response without a result object or an error code");
  }
  return undefined;
}

/**
 * Reads a `text/event-stream` body chunk by chunk (WHATWG server-sent events: `data:` lines joined
 * by newlines, an event per blank line, `\n`, `\r\n` or `\r` line ends) and returns the response to
 * request `id` as soon as its event is complete. Skipped: events of other types, events without
 * data (the priming event servers send first since MCP 2025-11-25), comments, and events that are
 * not JSON-RPC messages (counted in {@link skipped}; a stream is a channel the server also uses
 * for other things, and when it ends without our answer the call fails anyway). A message with our
 * id that is not a valid response throws {@link ProtocolError}.
 */
export class SseAnswerReader {
  #pending = "";
  #data: string[] = [];
  #event = "";
  /** Events with data that was not a JSON-RPC message. */
  skipped = 0;
  /** The last chunk ended in `\r`: a `\n` that starts the next one belongs to it. */
  #skipLf = false;

  constructor(private readonly id: string) {}

  /** Feeds decoded text; returns our answer once its event is complete. */
  push(chunk: string): JsonRpcAnswer | undefined {
    let text = this.#pending + chunk;
    if (this.#skipLf && text.charCodeAt(0) === 10) text = text.slice(1);
    this.#skipLf = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const answer = this.#line(text.slice(start, i));
      if (c === 13) {
        if (i + 1 === text.length) this.#skipLf = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      if (answer) return answer;
    }
    this.#pending = text.slice(start);
    return undefined;
  }

  #line(line: string): JsonRpcAnswer | undefined {
    if (line.length === 0) return this.#dispatch();
    if (line.charCodeAt(0) === 58 /* ':' comment */) return undefined;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    return undefined;
  }

  #dispatch(): JsonRpcAnswer | undefined {
    const data = this.#data.join("\n");
    const event = this.#event;
    this.#data = [];
    this.#event = "";
    if (data === "" || (event !== "" && event !== "message")) return undefined;
    let payload: unknown;
    try {
      payload = JSON.parse(data);
    } catch {
      this.skipped++;
      return undefined;
    }
    if (!isJsonRpc(payload) && !Array.isArray(payload)) {
      this.skipped++;
      return undefined;
    }
    return answerIn(payload, this.id);
  }
}
