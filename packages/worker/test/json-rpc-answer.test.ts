import { describe, expect, it } from "vitest";
import { answerIn, ProtocolError, SseAnswerReader } from "../src/protocol/json-rpc-answer.js";

const ID = "vmk-ka-1";
const response = (id: unknown, rest: object = { result: {} }) => JSON.stringify({ jsonrpc: "2.0", id, ...rest });

describe("reading the response to our request", () => {
  it("finds the response with our id in a message or a batch, and skips other messages", () => {
    expect(answerIn(JSON.parse(response(ID, { result: { a: 1 } })), ID)).toEqual({ kind: "result", result: { a: 1 } });
    const batch = [{ jsonrpc: "2.0", method: "notifications/message", params: {} }, JSON.parse(response(7)), JSON.parse(response(ID, { error: { code: -32601, message: "nope" } }))];
    expect(answerIn(batch, ID)).toEqual({ kind: "error", code: -32601, message: "nope" });
    expect(answerIn(JSON.parse(response(7)), ID)).toBeUndefined();
  });

  it("takes an error with a null id as the answer to our only request", () => {
    expect(answerIn(JSON.parse(response(null, { error: { code: -32700, message: "parse error" } })), ID)).toEqual({ kind: "error", code: -32700, message: "parse error" });
  });

  it("rejects what is not JSON-RPC 2.0, and a response with neither a result object nor an error code", () => {
    expect(() => answerIn({ hello: "world" }, ID)).toThrow(ProtocolError);
    expect(() => answerIn("text", ID)).toThrow(ProtocolError);
    expect(() => answerIn(JSON.parse(response(ID, { result: "x" })), ID)).toThrow(ProtocolError);
    expect(() => answerIn(JSON.parse(response(ID, { error: { message: "no code" } })), ID)).toThrow(ProtocolError);
  });
});

describe("server-sent events", () => {
  it("returns our answer once its event is complete, across chunks split anywhere", () => {
    const stream = `: comment\n\nevent: message\nid: 1\ndata: ${response(3)}\n\ndata: ${response(ID, { result: { ok: true } })}\n\n`;
    for (let cut = 1; cut < stream.length; cut += 7) {
      const reader = new SseAnswerReader(ID);
      expect(reader.push(stream.slice(0, cut)) ?? reader.push(stream.slice(cut))).toEqual({ kind: "result", result: { ok: true } });
    }
  });

  it("joins multi-line data and accepts CRLF and CR line ends, a CRLF split between chunks too", () => {
    const reader = new SseAnswerReader(ID);
    expect(reader.push(`data: {"jsonrpc": "2.0",\r`)).toBeUndefined();
    expect(reader.push(`\ndata: "id": "${ID}",\rdata: "result": {"n": 1}}\r`)).toBeUndefined();
    expect(reader.push("\n\r\n")).toEqual({ kind: "result", result: { n: 1 } });
    const cr = new SseAnswerReader(ID);
    expect(cr.push(`data: ${response(ID)}\r\r`)).toEqual({ kind: "result", result: {} });
  });

  it("skips events of other types, events without data, and data that is not JSON-RPC", () => {
    const reader = new SseAnswerReader(ID);
    expect(reader.push(`id: prime-1\ndata: \n\n`)).toBeUndefined();
    expect(reader.push(`event: endpoint\ndata: not json\n\n`)).toBeUndefined();
    expect(reader.push(`data: {broken\n\ndata: {"hello": "world"}\n\n`)).toBeUndefined();
    expect(reader.skipped).toBe(2);
    expect(reader.push(`data: ${response(ID)}\n\n`)).toEqual({ kind: "result", result: {} });
  });

  it("throws when the message with our id is not a valid response", () => {
    expect(() => new SseAnswerReader(ID).push(`data: ${response(ID, { result: 42 })}\n\n`)).toThrow(ProtocolError);
  });
});
