import http from "node:http";
import https from "node:https";
import { Readable, Transform } from "node:stream";

/** What the SDK transport needs of `fetch` (its `fetch` option). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface KeepAliveFetchOptions {
  /**
   * Close a pooled connection after it has been idle this long. Node also honours a shorter
   * `Keep-Alive: timeout=N` hint from the server (minus 1 s), which avoids reusing a socket the
   * server is about to close.
   * @defaultValue 4000
   */
  readonly idleSocketTimeoutMs?: number;
  /** Most connections per backend host. @defaultValue 256 */
  readonly maxSocketsPerHost?: number;
  /**
   * After an abort, how long a response stream that already started may run on before its
   * connection is cut (see `onAbort`). @defaultValue 1000
   */
  readonly streamGraceMs?: number;
  /**
   * Most body bytes read of one response; past it the connection is cut and the request fails
   * with {@link ResponseTooLargeError} (a keepalive answer is tiny; a huge one must not grow the
   * worker's memory). @defaultValue 65_536
   */
  readonly maxResponseBytes?: number;
}

/** A response body went past `maxResponseBytes`: the connection was cut. */
export class ResponseTooLargeError extends Error {
  readonly code = "ERR_RESPONSE_TOO_LARGE";
  constructor(readonly limit: number) {
    super(`response body larger than ${limit} bytes; connection cut`);
    this.name = "ResponseTooLargeError";
  }
}

export interface KeepAliveFetch {
  readonly fetch: FetchLike;
  /** Closes every pooled connection. In-flight requests fail with a connection error. */
  close(): void;
}

/**
 * A minimal `fetch` over `node:http`/`node:https` with pooled keep-alive connections, for the SDK's
 * `StreamableHTTPClientTransport` (its `fetch` option). The SDK still speaks MCP — headers,
 * JSON-RPC parsing, SSE, error types; only the HTTP layer is swapped.
 *
 * Why: measured side by side on one machine (bench/, 32 concurrent pings on existing sessions),
 * the transport over Node's global fetch (undici, web streams) cost 0.68 ms of client CPU per
 * ping, the same transport over this fetch 0.23–0.28 ms; a keepalive is mostly this call.
 *
 * Scope, on purpose: no redirects (a 3xx comes back as is and the transport reports it as an HTTP
 * error, as with `redirect: "manual"`), no cookies, no compression. JSON bodies are buffered;
 * SSE bodies stream. A request that fails with ECONNRESET/EPIPE on a *reused* idle connection
 * before any response byte — the server closed it as we sent — is retried once on a fresh
 * connection; without that, a race every keep-alive client has would count as a backend failure.
 */
export function createKeepAliveFetch(options: KeepAliveFetchOptions = {}): KeepAliveFetch {
  const agentOptions = {
    keepAlive: true,
    timeout: options.idleSocketTimeoutMs ?? 4_000,
    maxSockets: options.maxSocketsPerHost ?? 256,
    scheduling: "lifo" as const,
  };
  const streamGraceMs = options.streamGraceMs ?? 1_000;
  const maxResponseBytes = options.maxResponseBytes ?? 65_536;
  const httpAgent = new http.Agent(agentOptions);
  const httpsAgent = new https.Agent(agentOptions);

  const fetchOnce = (url: URL, init: RequestInit, headers: http.OutgoingHttpHeaders, body: string | undefined): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      // The response once its head arrived: an abort after the body was read in full must not cut
      // the connection (callMcp aborts every call when it ends), see onAbort.
      let response: http.IncomingMessage | undefined;
      const secure = url.protocol === "https:";
      const request = (secure ? https : http).request(
        {
          protocol: url.protocol,
          hostname: url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname,
          port: url.port || (secure ? 443 : 80),
          path: `${url.pathname}${url.search}`,
          method: init.method ?? "GET",
          headers,
          agent: secure ? httpsAgent : httpAgent,
        },
        (res) => {
          response = res;
          const status = res.statusCode ?? 0;
          const contentType = res.headers["content-type"] ?? "";
          if (contentType.startsWith("text/event-stream") && status !== 204 && status !== 304) {
            // A stream: the SDK reads it through web streams, so it gets a real Response.
            const headers = new Headers();
            const raw = res.rawHeaders;
            for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
            let read = 0;
            const capped = new Transform({
              transform(chunk: Buffer, _encoding, next) {
                read += chunk.length;
                if (read > maxResponseBytes) {
                  const err = new ResponseTooLargeError(maxResponseBytes);
                  request.destroy(err);
                  next(err);
                } else next(null, chunk);
              },
            });
            res.on("error", (err) => capped.destroy(err));
            done(new Response(Readable.toWeb(res.pipe(capped)) as ReadableStream<Uint8Array>, { status, statusText: res.statusMessage ?? "", headers }));
          } else {
            const chunks: Buffer[] = [];
            let read = 0;
            res.on("data", (chunk: Buffer) => {
              read += chunk.length;
              if (read <= maxResponseBytes) chunks.push(chunk);
              else {
                const err = new ResponseTooLargeError(maxResponseBytes);
                fail(err);
                request.destroy(err);
              }
            });
            res.on("end", () => done(bufferedResponse(url, res, Buffer.concat(chunks))));
            res.on("error", fail);
          }
        },
      );
      // Before the response: cut at once. A body read in full: keep the connection for the pool.
      // A stream (SSE) still open: its reply has usually arrived and the stream ends a moment
      // later; cutting it at once would throw its connection away, so it gets `streamGraceMs`.
      const onAbort = () => {
        if (!response) request.destroy(abortError(signal!));
        else if (!response.complete) {
          const res = response;
          const cut = setTimeout(() => {
            if (!res.complete) request.destroy(abortError(signal!));
          }, streamGraceMs);
          cut.unref();
          request.once("close", () => clearTimeout(cut));
        }
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      // Unhook once the body is complete (or failed): a streaming body still needs the signal.
      request.once("close", () => signal?.removeEventListener("abort", onAbort));
      let settled = false;
      function done(response: Response) {
        settled = true;
        resolve(response);
      }
      function fail(err: Error) {
        if (settled) return;
        settled = true;
        (err as Error & { reusedSocket?: boolean }).reusedSocket = request.reusedSocket;
        reject(err);
      }
      request.on("error", fail);
      request.end(body);
    });

  const fetchLike: FetchLike = async (input, init = {}) => {
    const url = input instanceof URL ? input : new URL(typeof input === "string" ? input : input.url);
    const headers = toNodeHeaders(init.headers);
    const body = init.body;
    if (body !== undefined && body !== null && typeof body !== "string") {
      throw new TypeError("keep-alive fetch: only string bodies are supported");
    }
    if (body !== undefined && body !== null) headers["content-length"] = Buffer.byteLength(body);
    try {
      return await fetchOnce(url, init, headers, body ?? undefined);
    } catch (err) {
      const e = err as Error & { code?: string; reusedSocket?: boolean };
      if (e.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE") && !init.signal?.aborted) {
        return fetchOnce(url, init, headers, body ?? undefined);
      }
      throw err;
    }
  };

  return {
    fetch: fetchLike,
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

/**
 * The part of a WHATWG `Response` the SDK transport reads, for a body already in memory
 * (`application/json` answers, errors, 202/204): ok, status, headers.get, text(), json(),
 * body.cancel(). Building undici's `Response` and `Headers` for every keepalive was ~5 % of the
 * worker's CPU at saturation (bench --profile-throughput).
 */
function bufferedResponse(url: URL, res: http.IncomingMessage, bytes: Buffer): Response {
  const status = res.statusCode ?? 0;
  const nodeHeaders = res.headers;
  let used = false;
  const consume = (): Buffer => {
    if (used) throw new TypeError("Body is unusable: Body has already been read");
    used = true;
    return bytes;
  };
  const text = (value: string | string[] | undefined): string | null => (value === undefined ? null : Array.isArray(value) ? value.join(", ") : String(value));
  const headers = {
    get: (name: string): string | null => text(nodeHeaders[name.toLowerCase()]),
    has(name: string): boolean {
      return nodeHeaders[name.toLowerCase()] !== undefined;
    },
    forEach(fn: (value: string, key: string) => void): void {
      for (const [key, value] of Object.entries(nodeHeaders)) {
        const v = text(value);
        if (v !== null) fn(v, key);
      }
    },
  };
  const response = {
    ok: status >= 200 && status < 300,
    status,
    statusText: res.statusMessage ?? "",
    url: url.href,
    type: "basic",
    redirected: false,
    headers,
    get bodyUsed() {
      return used;
    },
    body: bytes.length === 0 ? null : { cancel: async () => void (used = true) },
    text: async () => consume().toString("utf8"),
    json: async (): Promise<unknown> => JSON.parse(consume().toString("utf8")),
    arrayBuffer: async () => {
      const b = consume();
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    },
  };
  return response as unknown as Response;
}

function toNodeHeaders(h: RequestInit["headers"]): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  if (!h) return out;
  if (h instanceof Headers) h.forEach((value, key) => (out[key] = value));
  else if (Array.isArray(h)) {
    for (const [key, value] of h) if (key !== undefined && value !== undefined) out[key.toLowerCase()] = value;
  } else for (const [key, value] of Object.entries(h as Record<string, string>)) out[key.toLowerCase()] = value;
  return out;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException("The operation was aborted", "AbortError");
}
