import { connect as tlsConnect } from "node:tls";
import type { Redis } from "ioredis";
import { closeRedis, createRedis } from "@vmcp-keepalive/shared";
import { makeTestPki, startEmbeddedRedis, startTlsRedis, type EmbeddedRedis, type TlsRedis } from "@vmcp-keepalive/testkit";
import { openBenchBackend, type BenchBackend } from "../backend-process.js";
import { configDocument } from "../config.js";
import { benchRedisTarget, mark, sleep, type BenchContext } from "../context.js";
import { totalCpuMs } from "../measure/proc-cpu.js";
import { redisCpuMs } from "../measure/redis-info.js";
import { percentile } from "../measure/stats.js";
import { writeConfig, type Child } from "../processes.js";
import { registerInProcess } from "../registration.js";
import { startWorker } from "./throughput.js";

/** One server's share of a window. */
export interface TlsSideWindow {
  readonly keepalives: number;
  readonly perSecond: number;
  readonly workerCpuMsPerKeepalive: number;
  readonly redisCpuUsPerKeepalive: number;
}

export interface TlsSideResult {
  /** Medians over the windows. */
  readonly perSecond: number;
  readonly workerCpuMsPerKeepalive: number;
  readonly redisCpuUsPerKeepalive: number;
}

export interface TlsCompareResult {
  readonly pairs: number;
  readonly intervalMs: number;
  /** What the worker's connections to the TLS server negotiated, e.g. TLSv1.3 and TLS_AES_256_GCM_SHA384. */
  readonly protocol: string;
  readonly cipher: string;
  readonly windows: readonly { readonly plain: TlsSideWindow; readonly tls: TlsSideWindow }[];
  readonly plain: TlsSideResult;
  readonly tls: TlsSideResult;
  /** TLS ÷ plain worker CPU per keepalive: the median over the windows of each window's ratio. */
  readonly workerCpuRatio: number;
  /** TLS ÷ plain Redis CPU per keepalive, the same way. */
  readonly redisCpuRatio: number;
}

interface Side {
  readonly name: "plain" | "tls";
  readonly ctx: BenchContext;
  readonly worker: Child;
}

/**
 * Worker and Redis CPU per keepalive over TLS next to plain TCP: two fresh redis-servers of the
 * same config — one plain, one TLS-only with a private CA that requires client certificates —
 * each with `tlsPairs` pairs at `tlsIntervalMs` (a steady rate, below saturation), its own worker
 * process and its own backend process (so each side's keepalives are counted apart). Both run at
 * once and are measured in the same windows: a drift of the machine over the phase weighs on both
 * alike, and no worker restarts between windows (a restart would bring an interval of catch-up
 * ticks with it).
 */
export async function runTlsCompare(ctx: BenchContext): Promise<TlsCompareResult> {
  const { sizes } = ctx;
  const pki = makeTestPki();
  const servers: EmbeddedRedis[] = [];
  const admins: Redis[] = [];
  const workers: Child[] = [];
  let tlsBackend: BenchBackend | undefined;
  try {
    // Each piece is kept as it starts, so that the finally below stops whatever did start.
    const [plainServer, tlsServer, opened] = await Promise.all([
      startEmbeddedRedis().then((r) => (servers.push(r), r)),
      startTlsRedis({ pki }).then((r) => (servers.push(r), r)),
      openBenchBackend(ctx.jsonResponse, sizes.backendSessions).then((o) => ((tlsBackend = o.backend), o)),
    ]);
    const contexts = {
      plain: { ...ctx, redisUrl: plainServer.url, redisTls: undefined },
      tls: { ...ctx, redisUrl: tlsServer.url, redisTls: pki, backend: opened.backend, sessions: opened.sessions },
    };
    const sides: Side[] = await Promise.all(
      (["plain", "tls"] as const).map(async (name) => {
        const admin = createRedis(benchRedisTarget(contexts[name]), "client", `bench-tls-${name}`) as Redis;
        admins.push(admin);
        const side = { ...contexts[name], redis: admin };
        const configPath = writeConfig(ctx.dir, `tls-${name}`, configDocument(side, "bench-tls", sizes.tlsIntervalMs));
        const worker = await startWorker(side, configPath, `worker-${name}`);
        workers.push(worker);
        return { name, ctx: side, worker };
      }),
    );
    ctx.log(`  ${sizes.tlsPairs} pairs at ${sizes.tlsIntervalMs} ms on a plain and on a TLS-only redis-server, a worker each`);
    for (const s of sides) await registerInProcess(s.ctx, "bench-tls", sizes.tlsPairs, sizes.tlsIntervalMs, `tls${s.name}`);
    // The first ticks are spread over the first interval.
    await sleep(sizes.tlsIntervalMs + sizes.warmupMs);

    const windows: { plain: TlsSideWindow; tls: TlsSideWindow }[] = [];
    for (let w = 0; w < sizes.tlsWindows; w++) {
      const read = () => Promise.all(sides.map(async (s) => ({ at: await mark(s.ctx.backend), worker: totalCpuMs([s.worker.pid]), redis: await redisCpuMs(s.ctx.redis) })));
      const before = await read();
      await sleep(sizes.windowMs);
      const after = await read();
      const result = await Promise.all(
        sides.map(async (s, i): Promise<TlsSideWindow> => {
          const b = before[i]!;
          const a = after[i]!;
          const keepalives = await s.ctx.backend.pingsBetween(b.at.callIndex, a.at.callIndex);
          const per = Math.max(1, keepalives);
          return {
            keepalives,
            perSecond: (keepalives * 1000) / (a.at.at - b.at.at),
            workerCpuMsPerKeepalive: (a.worker - b.worker) / per,
            redisCpuUsPerKeepalive: ((a.redis - b.redis) * 1000) / per,
          };
        }),
      );
      const window = { plain: result[0]!, tls: result[1]! };
      windows.push(window);
      const us = (x: number) => (x * 1000).toFixed(0);
      ctx.log(
        `  window ${w + 1}: plain ${window.plain.perSecond.toFixed(0)}/s, worker ${us(window.plain.workerCpuMsPerKeepalive)} µs, Redis ${window.plain.redisCpuUsPerKeepalive.toFixed(0)} µs; ` +
          `TLS ${window.tls.perSecond.toFixed(0)}/s, worker ${us(window.tls.workerCpuMsPerKeepalive)} µs, Redis ${window.tls.redisCpuUsPerKeepalive.toFixed(0)} µs per keepalive`,
      );
    }
    const { protocol, cipher } = await negotiated(tlsServer);
    const median = (pick: (w: { plain: TlsSideWindow; tls: TlsSideWindow }) => number) => percentile(windows.map(pick), 50);
    const side = (name: "plain" | "tls"): TlsSideResult => ({
      perSecond: median((w) => w[name].perSecond),
      workerCpuMsPerKeepalive: median((w) => w[name].workerCpuMsPerKeepalive),
      redisCpuUsPerKeepalive: median((w) => w[name].redisCpuUsPerKeepalive),
    });
    return {
      pairs: sizes.tlsPairs,
      intervalMs: sizes.tlsIntervalMs,
      protocol,
      cipher,
      windows,
      plain: side("plain"),
      tls: side("tls"),
      workerCpuRatio: median((w) => w.tls.workerCpuMsPerKeepalive / w.plain.workerCpuMsPerKeepalive),
      redisCpuRatio: median((w) => w.tls.redisCpuUsPerKeepalive / w.plain.redisCpuUsPerKeepalive),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(admins.map((a) => closeRedis(a)));
    await tlsBackend?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    pki.remove();
    await ctx.backend.clear();
  }
}

/** The protocol and cipher a client with the bench's TLS options negotiates with the server (Node's defaults, as the worker's ioredis connections). */
function negotiated(server: TlsRedis): Promise<{ protocol: string; cipher: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ ...server.tls, port: server.port, host: "127.0.0.1" });
    socket.once("secureConnect", () => {
      resolve({ protocol: socket.getProtocol() ?? "unknown", cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.once("error", reject);
  });
}
