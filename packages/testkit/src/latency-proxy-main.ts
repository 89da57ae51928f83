import { startLatencyProxy } from "./latency-proxy.js";

// `node latency-proxy-main.js <targetPort> <delayMs> [host]`: prints `listening <port>`.
const [port, delay, host] = process.argv.slice(2);
const proxy = await startLatencyProxy({ port: Number(port), host: host ?? "127.0.0.1" }, Number(delay));
process.stdout.write(`listening ${proxy.port}\\n`);
process.on("SIGTERM", () => void proxy.stop().then(() => process.exit(0)));
