import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createHash } from "node:crypto";
import { ACL_ROLES, aclPasswordVariable, createLogger, ensureDefaultMetrics, parseConfig, type AclRole, type KeepaliveConfig } from "@vmcp-keepalive/runtime";
import { QUEUE_KEEPALIVE, REDIS_SERVER_SETTINGS } from "@vmcp-keepalive/shared";
import { flushPrefix, testPrefix } from "@vmcp-keepalive/testkit";
import { createScheduler } from "@vmcp-keepalive/scheduler";
import { createWorker } from "@vmcp-keepalive/worker";
import { runCli } from "./helpers/processes.js";

/**
 * No Docker engine or cluster runs here, so the deployment files are
 * checked for what can go wrong without one: they parse, and every file, build target, program,
 * port, config key, Secret, label and metric name they reference exists in this repository (or
 * in the real programs' /metrics).
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** `${VAR}` / `${VAR:-default}` / `${VAR:?msg}` names in a text. */
const envRefs = (text: string) => [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[-?][^}]*)?\}/g)].map((m) => m[1]!);

/** A compose file's value with its `${VAR}`, `${VAR:-default}` and `${VAR:?message}` filled from `env` (a `?` variable must be set). */
function composeValue(value: unknown, env: Record<string, string>): string {
  return String(value).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}/g, (_m, name: string, kind: string | undefined, rest: string) => {
    const set = env[name];
    if (set) return set;
    if (kind === "-") return rest;
    throw new Error(`compose variable ${name} is not set${kind === "?" ? ` (${rest})` : ""}`);
  });
}

/** The Redis users' passwords the deployment files are checked with. */
const ACL_PASSWORDS: Record<string, string> = Object.fromEntries(ACL_ROLES.map((role) => [aclPasswordVariable(role), `${role}-password-for-the-test`]));

/** The role of each program, by the Dockerfile target or service that runs it. */
const ROLE_OF: Record<string, AclRole> = { scheduler: "scheduler", worker: "worker", "demo-vmcp": "vmcp" };

interface DockerStage {
  name: string | undefined;
  from: string;
  lines: string[];
}
function parseDockerfile(text: string): { args: Map<string, string>; stages: DockerStage[] } {
  const logical = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const args = new Map<string, string>();
  const stages: DockerStage[] = [];
  for (const line of logical) {
    const [instr = "", ...rest] = line.split(/\s+/);
    const upper = instr.toUpperCase();
    if (upper === "FROM") {
      const m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
      stages.push({ from: m?.[1] ?? "", name: m?.[2], lines: [] });
    } else if (upper === "ARG" && stages.length === 0) {
      const [k, v = ""] = rest.join(" ").split("=");
      args.set(k!, v);
    } else {
      stages.at(-1)?.lines.push(line);
    }
  }
  return { args, stages };
}

/** The ports each program listens on with a config, as main.ts computes them. */
const portOf = (config: KeepaliveConfig, program: "scheduler" | "worker") => config.http.port ?? (program === "scheduler" ? config.http.schedulerPort : config.http.workerPort);

/** Metric family names used in a PromQL expression (histogram series suffixes stripped). */
function metricNames(expr: string): string[] {
  const names = expr.match(/\b(?:keepalive|vmk|process|nodejs)_[a-z0-9_]+/g) ?? [];
  return names.map((n) => n.replace(/_(bucket|sum|count)$/, (s) => (/(latency_ms|lag_seconds)_(bucket|sum|count)$/.test(n) ? "" : s)));
}

describe("deployment files", () => {
  const redisUrl = inject("redisUrl");
  const prefix = testPrefix("ops-deploy");
  const exported = new Set<string>();
  const docker = parseDockerfile(read("Dockerfile"));
  const targets = new Map(docker.stages.filter((s) => s.name).map((s) => [s.name!, s]));
  const binsOf = (pkg: string) => Object.values(obj(JSON.parse(read(`packages/${pkg}/package.json`))["bin"])).map((p) => join("packages", pkg, String(p)).replace(/\/\.\//, "/"));
  const allBins = ["scheduler", "worker", "demo"].flatMap(binsOf);
  const defaults = parseConfig({});

  beforeAll(async () => {
    // The metric names the real programs export, from their own registries.
    const config = parseConfig({ redis: { url: redisUrl, prefix }, backends: [{ id: "b", url: "http://127.0.0.1:9/mcp" }] });
    const logger = createLogger({ name: "deploy-test", level: "silent" });
    const scheduler = createScheduler({ config, logger });
    const worker = createWorker({ config, logger });
    for (const r of [scheduler.registry, worker.registry]) {
      ensureDefaultMetrics(r);
      for (const m of r.getMetricsAsArray()) exported.add(m.name);
    }
    await scheduler.stop();
    await worker.stop();
  });
  afterAll(async () => {
    await flushPrefix(redisUrl, prefix);
  });

  it("Dockerfile: a multi-stage build on a Node LTS image with a target per program", () => {
    const image = docker.args.get("NODE_IMAGE") ?? "";
    expect(image).toMatch(/^node:(\d+)-slim$/);
    const major = Number(/^node:(\d+)/.exec(image)?.[1]);
    expect(major % 2 === 0 && major >= 20, `${image} is an LTS line`).toBe(true);
    for (const t of ["build", "runtime", "scheduler", "worker", "cli", "demo"]) expect(targets.has(t), `target ${t}`).toBe(true);
    const stageNames = new Set(targets.keys());
    for (const stage of docker.stages) {
      // Every stage starts from the pinned Node image or from an earlier stage.
      expect(stage.from === "${NODE_IMAGE}" || stageNames.has(stage.from), `FROM ${stage.from}`).toBe(true);
      for (const line of stage.lines) {
        const copy = /^COPY\s+(.*)$/i.exec(line);
        if (copy) {
          const parts = copy[1]!.split(/\s+/);
          const from = parts.find((p) => p.startsWith("--from="));
          const paths = parts.filter((p) => !p.startsWith("--"));
          const sources = paths.slice(0, -1);
          if (from) expect(stageNames.has(from.slice("--from=".length)), line).toBe(true);
          else for (const src of sources) expect(existsSync(join(ROOT, src)), `${line}: ${src} exists`).toBe(true);
        }
        const entry = /^ENTRYPOINT\s+(\[.*\])$/i.exec(line);
        if (entry) {
          const argv = JSON.parse(entry[1]!) as string[];
          expect(argv[0]).toBe("node");
          expect(allBins, `${argv[1]} is a package bin`).toContain(argv[1]);
          expect(existsSync(join(ROOT, argv[1]!))).toBe(true);
        }
      }
    }
    const expose = (t: string) =>
      targets
        .get(t)!
        .lines.find((l) => l.startsWith("EXPOSE"))
        ?.split(/\s+/)[1];
    expect(Number(expose("scheduler"))).toBe(defaults.http.schedulerPort);
    expect(Number(expose("worker"))).toBe(defaults.http.workerPort);
    expect(read(".dockerignore")).toMatch(/node_modules/);
  });

  it("Dockerfile: the production install (its own command, on the manifests it copies) holds no test tooling", () => {
    // The manifests and lockfile the build stage copies before its first install.
    const build = targets.get("build")!.lines;
    const firstInstall = build.findIndex((l) => /^RUN pnpm install/.test(l));
    const copies = build
      .slice(0, firstInstall)
      .filter((l) => /^COPY\s/i.test(l))
      .flatMap((l) => {
        const paths = l.split(/\s+/).slice(1);
        const dest = paths.at(-1)!;
        return paths.slice(0, -1).map((src) => ({ src, dest: dest.endsWith("/") ? join(dest, basename(src)) : dest }));
      });
    expect(copies.map((c) => c.src)).toContain("packages/demo/package.json");
    const prodInstall = targets
      .get("prod-deps")!
      .lines.map((l) => /pnpm install [^&]*--prod[^&]*/.exec(l)?.[0].trim())
      .find(Boolean);
    expect(prodInstall, "the prod-deps stage runs pnpm install --prod").toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), "vmk-image-deps-"));
    try {
      for (const { src, dest } of copies) {
        mkdirSync(dirname(join(dir, dest)), { recursive: true });
        copyFileSync(join(ROOT, src), join(dir, dest));
      }
      // From this checkout's store, without the network or install scripts.
      const store = spawnSync("pnpm", ["store", "path"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();
      const args = [...prodInstall!.split(/\s+/).slice(1), "--offline", "--ignore-scripts", "--store-dir", store];
      const r = spawnSync("pnpm", args, { cwd: dir, encoding: "utf8", env: { ...process.env, CI: "true" } });
      expect(r.status, `pnpm ${args.join(" ")}: ${r.stdout}${r.stderr}`).toBe(0);
      const installed = readdirSync(join(dir, "node_modules/.pnpm"));
      expect(installed.some((p) => p.startsWith("bullmq@"))).toBe(true);
      expect(installed.filter((p) => /^(@vitest\+|vitest@|playwright)/.test(p))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("docker-compose.yml: Redis with AOF, 2 schedulers, 3 workers, demo backend and vMCP, Prometheus", () => {
    const compose = obj(parseYaml(read("docker-compose.yml"), { merge: true }));
    const services = obj(compose["services"]);
    const byTarget = (t: string) =>
      Object.entries(services)
        .filter(([, s]) => obj(obj(s)["build"])["target"] === t)
        .map(([n]) => n);
    const schedulers = byTarget("scheduler");
    const workers = byTarget("worker");
    expect(schedulers).toHaveLength(2);
    expect(workers).toHaveLength(3);
    expect(byTarget("demo").sort()).toEqual(["demo-backend", "demo-vmcp"]);
    expect(JSON.stringify(obj(services["redis"])["command"])).toMatch(/"--appendonly","yes"/);

    const composeEnv = { ADMIN_PASSWORD: "a-test-password-long-enough", ...ACL_PASSWORDS };
    const configs = new Map<string, KeepaliveConfig>();
    for (const [name, raw] of Object.entries(services)) {
      const s = obj(raw);
      const build = obj(s["build"]);
      if (build["target"] !== undefined) {
        expect(targets.has(String(build["target"])), `${name}: target ${String(build["target"])}`).toBe(true);
        expect(existsSync(join(ROOT, String(build["context"] ?? "."), String(build["dockerfile"] ?? "Dockerfile")))).toBe(true);
      }
      for (const dep of Object.keys(Array.isArray(s["depends_on"]) ? Object.fromEntries(arr(s["depends_on"]).map((d) => [d, 1])) : obj(s["depends_on"]))) {
        expect(Object.keys(services), `${name} depends on ${dep}`).toContain(dep);
      }
      for (const v of arr(s["volumes"])) {
        const [src, dst] = String(v).split(":");
        if (src?.startsWith("./")) expect(existsSync(join(ROOT, src)), `${name}: ${src}`).toBe(true);
        if (dst === "/etc/vmcp-keepalive/config.yaml") {
          const env = Object.fromEntries(Object.entries(obj(s["environment"])).map(([k, val]) => [k, composeValue(val, composeEnv)]));
          expect(obj(s["environment"])["KEEPALIVE_CONFIG"]).toBe(dst);
          configs.set(name, parseConfig(parseYaml(read(src!)), env, src));
        }
      }
      const entry = arr(s["entrypoint"]).map(String);
      // `node <bin> …`, or `sh -c "node <bin> …"`: the program run is a package bin.
      const bin = entry[0] === "sh" ? /\bnode (\S+)/.exec(entry[2] ?? "")?.[1] : entry[1];
      // (Services of our images only: a third-party image runs its own command.)
      if (entry.length && build["target"] !== undefined) expect(allBins, `${name}: ${entry.join(" ")}`).toContain(bin);
    }
    for (const n of [...schedulers, ...workers]) expect(configs.has(n), `${n} mounts the config`).toBe(true);

    // The config's backend is the demo backend service on the port it listens on.
    const config = configs.get(schedulers[0]!)!;
    const backendUrl = new URL(config.backends[0]!.url);
    const backendCmd = arr(obj(services[backendUrl.hostname])["command"]).map(String);
    expect(backendCmd[backendCmd.indexOf("--port") + 1]).toBe(backendUrl.port);
    // The demo vMCP registers on that backend id, under the same prefix.
    const vmcpCmd = arr(obj(services["demo-vmcp"])["command"]).map(String);
    const flag = (f: string) => vmcpCmd[vmcpCmd.indexOf(f) + 1];
    expect(flag("--backend-url")).toBe(config.backends[0]!.url);
    expect(config.backends.map((b) => b.id)).toContain(flag("--backend-id"));
    expect(flag("--prefix")).toBe(config.redis.prefix);
    expect(config.admin.password).toBe(composeEnv.ADMIN_PASSWORD);

    // Prometheus scrapes every scheduler and worker on the port the config gives it.
    const prom = obj(parseYaml(read("deploy/prometheus.yml")));
    const scraped = arr(prom["scrape_configs"]).flatMap((sc) => arr(obj(sc)["static_configs"]).flatMap((st) => arr(obj(st)["targets"]).map(String)));
    const expected = [...schedulers.map((n) => `${n}:${portOf(configs.get(n)!, "scheduler")}`), ...workers.map((n) => `${n}:${portOf(configs.get(n)!, "worker")}`)];
    expect(scraped.sort()).toEqual(expected.sort());
    const published = arr(obj(services[schedulers[0]!])["ports"]).map(String);
    expect(published).toContain(`${portOf(config, "scheduler")}:${portOf(config, "scheduler")}`);
  });

  it("docker-compose.yml: Redis loads the users `vmcp-keepalive acl` writes from the programs' config, and each program connects as its role's user", async () => {
    const compose = obj(parseYaml(read("docker-compose.yml"), { merge: true }));
    const services = obj(compose["services"]);
    const composeEnv = { ADMIN_PASSWORD: "a-test-password-long-enough", ...ACL_PASSWORDS };
    const redis = obj(services["redis"]);
    const users = obj(services["redis-users"]);
    // Redis reads the ACL file from a volume the users service writes, once that has run.
    const command = arr(redis["command"]).map(String);
    const aclFile = command[command.indexOf("--aclfile") + 1]!;
    const mountOf = (s: Obj, path: string) =>
      arr(s["volumes"])
        .map(String)
        .find((v) => path.startsWith(`${v.split(":")[1]}/`));
    const redisMount = mountOf(redis, aclFile)!;
    expect(redisMount, "Redis mounts the users' volume").toMatch(/:ro$/);
    expect(mountOf(users, aclFile)?.split(":")[0]).toBe(redisMount.split(":")[0]);
    expect(Object.keys(obj(compose["volumes"]))).toContain(redisMount.split(":")[0]);
    expect(obj(obj(redis["depends_on"])["redis-users"])).toEqual({ condition: "service_completed_successfully" });
    expect(obj(users["build"])["target"]).toBe("cli");
    const script = arr(users["entrypoint"]).map(String)[2]!;
    expect(script).toContain(`vmcp-keepalive.js acl > ${aclFile}`);
    expect(script).toContain(`echo 'user default off' >> ${aclFile}`);
    // The health check asks as the operator (the default user is off).
    expect(JSON.stringify(obj(redis["healthcheck"])["test"])).toContain("--user operator");
    expect(Object.keys(obj(redis["environment"]))).toContain(aclPasswordVariable("operator"));

    // The users service's command, run here on its config and environment: each program's
    // REDIS_URL names its role's user with the password whose SHA-256 that user has.
    const usersEnv = Object.fromEntries(Object.entries(obj(users["environment"])).map(([k, v]) => [k, composeValue(v, composeEnv)]));
    const config = arr(users["volumes"])
      .map(String)
      .find((v) => v.endsWith(`:${usersEnv["KEEPALIVE_CONFIG"]}:ro`))!
      .split(":")[0]!;
    const generated = await runCli(["acl", "--config", join(ROOT, config)], usersEnv);
    expect(generated.code, generated.stderr).toBe(0);
    const shaOf = new Map(
      generated.stdout
        .trimEnd()
        .split("\n")
        .map((l) => [l.split(" ")[1]!, l.split(" ")[3]!.slice(1)]),
    );
    const roleOf = (name: string, s: unknown) => ROLE_OF[name] ?? ROLE_OF[String(obj(obj(s)["build"])["target"])];
    const connecting = Object.entries(services).filter(([name, s]) => roleOf(name, s));
    expect(connecting.map(([n]) => n).sort()).toEqual(["demo-vmcp", "scheduler-1", "scheduler-2", "worker-1", "worker-2", "worker-3"]);
    for (const [name, s] of connecting) {
      const role = roleOf(name, s)!;
      const url = new URL(composeValue(obj(obj(s)["environment"])["REDIS_URL"], composeEnv));
      expect(url.username, name).toBe(role);
      expect(createHash("sha256").update(decodeURIComponent(url.password)).digest("hex"), `${name}: the password of the ${role} user`).toBe(shaOf.get(role));
    }
  });

  it("docker-compose.yml: Redis speaks TLS only, with the certificates its one-shot service makes, and every program and the demo vMCP present the stack's client certificate", () => {
    const compose = obj(parseYaml(read("docker-compose.yml"), { merge: true }));
    const services = obj(compose["services"]);
    const redis = obj(services["redis"]);
    const command = arr(redis["command"]).map(String);
    const flag = (f: string) => command[command.indexOf(f) + 1];
    expect(flag("--port")).toBe("0");
    expect(flag("--tls-port")).toBe("6379");
    expect(flag("--tls-auth-clients")).toBe("yes");
    // The certificates come from the redis-tls service's volume, mounted where Redis reads them.
    const volumeAt = (s: Obj, path: string) =>
      arr(s["volumes"])
        .map(String)
        .find((v) => path.startsWith(`${v.split(":")[1]}/`))
        ?.split(":")[0];
    const certs = obj(services["redis-tls"]);
    const tlsVolume = volumeAt(redis, flag("--tls-cert-file")!)!;
    expect(Object.keys(obj(compose["volumes"]))).toContain(tlsVolume);
    expect(arr(certs["volumes"]).map(String)).toContain(`${tlsVolume}:/tls`);
    expect(obj(obj(redis["depends_on"])["redis-tls"])).toEqual({ condition: "service_completed_successfully" });
    expect(JSON.stringify(obj(redis["healthcheck"])["test"])).toContain("--tls --cacert /tls/ca.crt --cert /tls/client.crt --key /tls/client.key");

    // The script the service runs makes a CA, a server certificate for the host the programs
    // connect to, and a client certificate, all verified under that CA.
    const dir = mkdtempSync(join(tmpdir(), "vmk-compose-tls-"));
    try {
      const made = spawnSync("sh", [join(ROOT, "deploy/tls/make-certs.sh"), dir], { encoding: "utf8" });
      expect(made.status, made.stderr).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(["ca.crt", "client.crt", "client.key", "redis.crt", "redis.key"]);
      const verify = spawnSync("openssl", ["verify", "-CAfile", join(dir, "ca.crt"), join(dir, "redis.crt"), join(dir, "client.crt")], { encoding: "utf8" });
      expect(verify.status, verify.stderr).toBe(0);
      const san = spawnSync("openssl", ["x509", "-in", join(dir, "redis.crt"), "-noout", "-ext", "subjectAltName"], { encoding: "utf8" });
      expect(san.stdout).toContain("DNS:redis");
      // Run again: it keeps what it made.
      const before = readFileSync(join(dir, "ca.crt"), "utf8");
      expect(spawnSync("sh", [join(ROOT, "deploy/tls/make-certs.sh"), dir]).status).toBe(0);
      expect(readFileSync(join(dir, "ca.crt"), "utf8")).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // Each program: a rediss:// URL to that host, and its config's redis.tls files on the same volume.
    const env = { ADMIN_PASSWORD: "a-test-password-long-enough", ...ACL_PASSWORDS };
    const config = parseConfig(parseYaml(read("deploy/config/keepalive.yaml")), { ADMIN_PASSWORD: env.ADMIN_PASSWORD }, "deploy/config/keepalive.yaml");
    const tls = config.redis.tls!;
    for (const [name, raw] of Object.entries(services)) {
      const s = obj(raw);
      const target = String(obj(s["build"])["target"] ?? "");
      if (target !== "scheduler" && target !== "worker" && name !== "demo-vmcp") continue;
      const e = obj(s["environment"]);
      expect(new URL(composeValue(e["REDIS_URL"], env)).protocol, name).toBe("rediss:");
      const files = name === "demo-vmcp" ? [e["REDIS_TLS_CA_FILE"], e["REDIS_TLS_CERT_FILE"], e["REDIS_TLS_KEY_FILE"]].map(String) : [tls.caFile!, tls.certFile!, tls.keyFile!];
      for (const f of files) expect(volumeAt(s, f), `${name}: ${f}`).toBe(tlsVolume);
      expect(files.map((f) => basename(f))).toEqual(["ca.crt", "client.crt", "client.key"]);
    }
  });

  it("deploy/prometheus.yml and its alert rules pass promtool, and name only exported metrics", () => {
    const r = spawnSync("promtool", ["check", "config", join(ROOT, "deploy/prometheus.yml")], { encoding: "utf8" });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    const rules = obj(parseYaml(read("deploy/alerts.yml")));
    const exprs = arr(rules["groups"]).flatMap((g) => arr(obj(g)["rules"]).map((x) => String(obj(x)["expr"])));
    expect(exprs.length).toBeGreaterThan(0);
    for (const e of exprs) for (const m of metricNames(e)) expect(exported, `alert expr ${e}`).toContain(m);
  });

  it("Kubernetes manifests: Deployments, Services, PDBs, probes, ConfigMap and KEDA autoscaling are consistent", async () => {
    const docs = ["configmap.yaml", "secret.example.yaml", "scheduler.yaml", "worker.yaml", "keda-scaledobject.yaml"].flatMap((f) =>
      parseAllDocuments(read(`deploy/kubernetes/${f}`)).map((d) => {
        expect(d.errors, f).toEqual([]);
        return obj(d.toJS());
      }),
    );
    const ofKind = (k: string) => docs.filter((d) => d["kind"] === k);
    const named = (k: string, n: string) => ofKind(k).find((d) => obj(d["metadata"])["name"] === n);
    expect(ofKind("Deployment")).toHaveLength(2);
    expect(ofKind("Service")).toHaveLength(2);
    expect(ofKind("PodDisruptionBudget")).toHaveLength(2);

    const secretData = (name: string) => Object.fromEntries(Object.entries(obj(named("Secret", name)?.["stringData"])).map(([k, v]) => [k, String(v)]));
    const secretEnv = secretData("vmcp-keepalive-secrets");
    // The Redis users' passwords, under the names `vmcp-keepalive acl` reads.
    const usersSecret = secretData("vmcp-keepalive-redis-users");
    expect(Object.keys(usersSecret).sort()).toEqual(ACL_ROLES.map(aclPasswordVariable).sort());
    /** A container's environment as Kubernetes gives it: its Secrets (envFrom), then its own env, Secret references resolved. */
    const containerEnv = (c: Obj): Record<string, string> => ({
      ...Object.fromEntries(arr(c["envFrom"]).flatMap((ef) => Object.entries(secretData(String(obj(obj(ef)["secretRef"])["name"]))))),
      ...Object.fromEntries(
        arr(c["env"]).map((e) => {
          const ref = obj(obj(obj(e)["valueFrom"])["secretKeyRef"]);
          return [String(obj(e)["name"]), ref["key"] === undefined ? String(obj(e)["value"]) : (secretData(String(ref["name"]))[String(ref["key"])] ?? `missing ${String(ref["key"])}`)];
        }),
      ),
    });
    const cm = ofKind("ConfigMap")[0]!;
    const cmText = String(obj(cm["data"])["config.yaml"]);
    let config: KeepaliveConfig | undefined;

    for (const dep of ofKind("Deployment")) {
      const name = String(obj(dep["metadata"])["name"]);
      const program = name.endsWith("scheduler") ? "scheduler" : "worker";
      const spec = obj(dep["spec"]);
      const tpl = obj(spec["template"]);
      const labels = obj(obj(tpl["metadata"])["labels"]);
      expect(labels).toMatchObject(obj(obj(spec["selector"])["matchLabels"]));
      const podSpec = obj(tpl["spec"]);
      const c = obj(arr(podSpec["containers"])[0]);
      // The ConfigMap's ${VAR}s are in the container's environment; it connects as its role's Redis user.
      const cEnv = containerEnv(c);
      for (const v of envRefs(cmText)) expect(Object.keys(cEnv), `\${${v}} of the ConfigMap is in ${name}'s environment`).toContain(v);
      config = parseConfig(parseYaml(cmText), { ...cEnv, HTTP_HOST: "0.0.0.0" }, "configmap");
      const redisUrl = new URL(config.redis.url!);
      expect([redisUrl.username, redisUrl.password], name).toEqual([program, usersSecret[aclPasswordVariable(program)]]);
      // TLS: the files redis.tls names are the keys of a mounted Secret.
      expect(redisUrl.protocol).toBe("rediss:");
      const tls = config.redis.tls!;
      for (const f of [tls.caFile!, tls.certFile!, tls.keyFile!]) {
        const m = arr(c["volumeMounts"])
          .map(obj)
          .find((vm) => f.startsWith(`${String(vm["mountPath"])}/`));
        expect(m, `${name}: ${f} is mounted`).toBeDefined();
        const v = arr(podSpec["volumes"])
          .map(obj)
          .find((vol) => vol["name"] === m!["name"]);
        expect(Object.keys(obj(named("Secret", String(obj(v!["secret"])["secretName"]))?.["stringData"])), `${name}: ${f}`).toContain(basename(f));
      }
      const image = String(c["image"]);
      expect(targets.has(/^vmcp-keepalive-([a-z]+):/.exec(image)?.[1] ?? ""), `${name}: image ${image} names a Dockerfile target`).toBe(true);
      const ports = arr(c["ports"]).map(obj);
      expect(ports.map((p) => p["containerPort"])).toEqual([portOf(config, program)]);
      const portNames = ports.map((p) => p["name"]);
      expect(obj(obj(c["livenessProbe"])["httpGet"])).toMatchObject({ path: "/healthz" });
      expect(obj(obj(c["readinessProbe"])["httpGet"])).toMatchObject({ path: "/readyz" });
      for (const probe of ["livenessProbe", "readinessProbe"]) expect(portNames).toContain(obj(obj(c[probe])["httpGet"])["port"]);
      expect(Number(obj(obj(tpl["metadata"])["annotations"])["prometheus.io/port"])).toBe(portOf(config, program));
      // Config: the ConfigMap mounted where KEEPALIVE_CONFIG points; secrets from the Secret.
      const env = Object.fromEntries(arr(c["env"]).map((e) => [String(obj(e)["name"]), String(obj(e)["value"])]));
      const mount = arr(c["volumeMounts"])
        .map(obj)
        .find((m) => `${String(m["mountPath"])}/config.yaml` === env["KEEPALIVE_CONFIG"]);
      expect(mount, `${name}: config mounted at KEEPALIVE_CONFIG`).toBeDefined();
      const vol = arr(podSpec["volumes"])
        .map(obj)
        .find((v) => v["name"] === mount!["name"]);
      expect(named("ConfigMap", String(obj(vol!["configMap"])["name"]))).toBeDefined();
      for (const ef of arr(c["envFrom"])) expect(named("Secret", String(obj(obj(ef)["secretRef"])["name"]))).toBeDefined();
      // The grace period covers draining in-flight calls (at most one call timeout).
      expect(Number(podSpec["terminationGracePeriodSeconds"]) * 1000).toBeGreaterThan(config.keepalive.timeoutMs + 5_000);

      const svc = named("Service", name)!;
      expect(labels).toMatchObject(obj(obj(svc["spec"])["selector"]));
      for (const p of arr(obj(svc["spec"])["ports"]).map(obj)) expect(portNames).toContain(p["targetPort"]);
      const pdb = named("PodDisruptionBudget", name)!;
      expect(labels).toMatchObject(obj(obj(obj(pdb["spec"])["selector"])["matchLabels"]));
    }

    // KEDA: scales the worker Deployment on the length of BullMQ's wait list of `keepalive`, as
    // the operator user, with what it reads from the worker container's environment.
    const so = ofKind("ScaledObject")[0]!;
    const target = named("Deployment", String(obj(obj(so["spec"])["scaleTargetRef"])["name"]))!;
    expect(target).toBeDefined();
    const trigger = obj(arr(obj(so["spec"])["triggers"])[0]);
    expect(trigger["type"]).toBe("redis");
    const meta = obj(trigger["metadata"]);
    expect(meta["listName"]).toBe(`${config!.redis.prefix}:${QUEUE_KEEPALIVE}:wait`);
    const targetEnv = containerEnv(obj(arr(obj(obj(obj(target["spec"])["template"])["spec"])["containers"])[0]));
    expect(Object.keys(secretEnv)).toContain(meta["addressFromEnv"]);
    expect([targetEnv[String(meta["usernameFromEnv"])], targetEnv[String(meta["passwordFromEnv"])]]).toEqual(["operator", usersSecret[aclPasswordVariable("operator")]]);
    // …over TLS, with the programs' CA and client certificate.
    expect(meta["enableTLS"]).toBe("true");
    const auth = named("TriggerAuthentication", String(obj(trigger["authenticationRef"])["name"]));
    expect(auth).toBeDefined();
    const refs = arr(obj(auth!["spec"])["secretTargetRef"]).map(obj);
    expect(refs.map((r) => r["parameter"]).sort()).toEqual(["ca", "cert", "key"]);
    for (const r of refs) expect(Object.keys(obj(named("Secret", String(r["name"]))?.["stringData"]))).toContain(r["key"]);
    // …and that list really is where BullMQ puts due jobs (checked on a real queue).
    const redis = new Redis(redisUrl, { connectionName: "harness" });
    const q = new Queue(QUEUE_KEEPALIVE, { connection: redis, prefix });
    try {
      await q.add("keepalive", { sessionId: "s", backendId: "b" });
      expect(await redis.llen(`${prefix}:${QUEUE_KEEPALIVE}:wait`)).toBe(1);
    } finally {
      await q.close();
      redis.disconnect();
    }
  });

  it("every redis-server the deployment files run has the Redis settings vmcp-keepalive ships", () => {
    const settings = Object.entries(REDIS_SERVER_SETTINGS);
    expect(settings.length).toBeGreaterThan(0);
    const args = (command: unknown) => arr(command).map(String).join(" ");
    const single = obj(obj(parseYaml(read("docker-compose.yml"), { merge: true }))["services"]);
    const cluster = obj(obj(parseYaml(read("docker-compose.cluster.yml"), { merge: true }))["services"]);
    const commands = [
      args(obj(single["redis"])["command"]),
      ...Object.keys(cluster)
        .filter((n) => /^redis-\d$/.test(n))
        .map((n) => args(obj(cluster[n])["command"])),
    ];
    expect(commands).toHaveLength(7);
    // The Bitnami charts' values: redis.conf lines.
    const confs = [
      String(obj(obj(parseYaml(read("deploy/kubernetes/redis-cluster/values.yaml")))["redis"])["configmap"]),
      String(obj(parseYaml(read("deploy/kubernetes/redis-sentinel/values.yaml")))["commonConfiguration"]),
    ];
    for (const [name, value] of settings) {
      for (const c of commands) expect(c, c).toContain(`--${name} ${value}`);
      for (const c of confs) expect(c.split("\n"), c).toContain(`${name} ${value}`);
    }
  });

  it("docker-compose.cluster.yml: 6 cluster nodes joined by a one-shot init, programs and demo vMCP in cluster mode on them", () => {
    const compose = obj(parseYaml(read("docker-compose.cluster.yml"), { merge: true }));
    const services = obj(compose["services"]);
    const nodes = Object.keys(services).filter((n) => /^redis-\d$/.test(n));
    expect(nodes).toHaveLength(6);
    for (const n of nodes) expect(arr(obj(services[n])["command"]).map(String).join(" ")).toMatch(/--cluster-enabled yes/);
    const init = obj(services["redis-cluster-init"]);
    expect(Object.keys(obj(init["depends_on"])).sort()).toEqual(nodes.sort());
    expect(arr(init["command"]).join(" ")).toMatch(/--cluster create .*--cluster-replicas 1 --cluster-yes/s);
    const byTarget = (t: string) => Object.entries(services).filter(([, v]) => obj(obj(v)["build"])["target"] === t);
    expect(byTarget("scheduler")).toHaveLength(2);
    expect(byTarget("worker")).toHaveLength(3);
    const env = { ADMIN_PASSWORD: "a-test-password-long-enough", HTTP_HOST: "0.0.0.0" };
    for (const [name, raw] of [...byTarget("scheduler"), ...byTarget("worker")]) {
      const s = obj(raw);
      expect(targets.has(String(obj(s["build"])["target"])), name).toBe(true);
      expect(Object.keys(obj(s["depends_on"]))).toEqual(["redis-cluster-init"]);
      // No REDIS_URL: cluster mode refuses it (exit 2 naming redis.url).
      expect(Object.keys(obj(s["environment"]))).not.toContain("REDIS_URL");
    }
    const [src] = String(arr(obj(byTarget("worker")[0]![1])["volumes"])[0]).split(":");
    const config = parseConfig(parseYaml(read(src!)), env, src);
    expect(config.redis.mode).toBe("cluster");
    expect(config.keepalive.shards).toBe(16);
    for (const node of config.redis.nodes) expect(nodes, node).toContain(new URL(node).hostname);
    // The demo vMCP publishes to the same cluster, prefix and shard count.
    const vmcp = obj(services["demo-vmcp"]);
    expect(String(obj(vmcp["environment"])["REDIS_NODES"]).split(",")).toEqual(config.redis.nodes);
    const cmd = arr(vmcp["command"]).map(String);
    expect(cmd[cmd.indexOf("--shards") + 1]).toBe(String(config.keepalive.shards));
    expect(cmd[cmd.indexOf("--prefix") + 1]).toBe(config.redis.prefix);
    expect(Object.keys(services)).toContain(new URL(config.backends[0]!.url).hostname);
  });

  it("Kubernetes Redis Cluster and Sentinel variants: each ConfigMap is a valid config of its mode on the chart's Service, its secrets in the Secret", () => {
    const secret = parseAllDocuments(read("deploy/kubernetes/secret.example.yaml"))
      .map((d) => obj(d.toJS()))
      .find((d) => obj(d["metadata"])["name"] === "vmcp-keepalive-secrets")!;
    // With what a Deployment adds (its Redis user, deploy/kubernetes/scheduler.yaml).
    const secretEnv: Record<string, string> = {
      ...Object.fromEntries(Object.entries(obj(secret["stringData"])).map(([k, v]) => [k, String(v)])),
      REDIS_USERNAME: "scheduler",
      REDIS_USER_PASSWORD: "scheduler-password",
    };
    for (const [dir, mode] of [
      ["redis-cluster", "cluster"],
      ["redis-sentinel", "sentinel"],
    ] as const) {
      const cm = obj(parseYaml(read(`deploy/kubernetes/${dir}/configmap.yaml`)));
      expect(obj(cm["metadata"])["name"]).toBe("vmcp-keepalive-config");
      const text = String(obj(cm["data"])["config.yaml"]);
      for (const v of envRefs(text)) expect(Object.keys(secretEnv), `\${${v}} of ${dir}/configmap.yaml is in the Secret`).toContain(v);
      // The Deployments load the whole Secret as env (envFrom): it holds no REDIS_URL, which would
      // override redis.url (refused in cluster mode, naming it), and these variants say so.
      expect(Object.keys(secretEnv)).not.toContain("REDIS_URL");
      expect(read(`deploy/kubernetes/${dir}/configmap.yaml`)).toMatch(/without\s+(#\s+)?REDIS_URL/);
      if (mode === "cluster")
        expect(() => parseConfig(parseYaml(text), { ...secretEnv, REDIS_URL: "redis://redis:6379", HTTP_HOST: "0.0.0.0" }, dir)).toThrow(
          /REDIS_URL \(redis\.url\): not used when redis\.mode is cluster/,
        );
      const config = parseConfig(parseYaml(text), { ...secretEnv, HTTP_HOST: "0.0.0.0" }, dir);
      expect(config.redis.mode).toBe(mode);
      const values = obj(parseYaml(read(`deploy/kubernetes/${dir}/values.yaml`)));
      const auth = mode === "cluster" ? values : obj(values["auth"]);
      expect(auth["existingSecret"]).toBe(obj(secret["metadata"])["name"]);
      expect(Object.keys(secretEnv)).toContain(String(auth["existingSecretPasswordKey"]));
      if (mode === "cluster") {
        expect(obj(values["cluster"])).toMatchObject({ nodes: 6, replicas: 1 });
        expect(config.keepalive.shards).toBe(16);
        expect(new URL(config.redis.nodes[0]!).hostname).toMatch(/^vmk-redis-cluster\./);
        // Each program as its own Redis user.
        expect(new URL(config.redis.nodes[0]!).username).toBe(secretEnv["REDIS_USERNAME"]);
      } else {
        expect(obj(values["sentinel"])).toMatchObject({ enabled: true, masterSet: config.redis.sentinelName });
        expect(config.redis.sentinels[0]).toMatch(/^vmk-redis\..*:26379$/);
        // The chart's password: the programs ask the Sentinels with the data nodes' password.
        expect(new URL(config.redis.url!).password).toBe(secretEnv["REDIS_PASSWORD"]);
      }
    }
  });

  it("docs/operations.md's metrics table lists every metric the programs export", () => {
    const doc = read("docs/operations.md");
    for (const name of exported) {
      if (/^(process|nodejs)_/.test(name)) continue;
      expect(doc, `docs/operations.md documents ${name}`).toContain(`| \`${name}\` |`);
    }
  });

  it("Grafana dashboard: valid JSON whose every query names an exported metric", () => {
    const dash = obj(JSON.parse(read("deploy/grafana/vmcp-keepalive-dashboard.json")));
    const exprs = arr(dash["panels"]).flatMap((p) => arr(obj(p)["targets"]).map((t) => String(obj(t)["expr"])));
    expect(exprs.length).toBeGreaterThanOrEqual(10);
    const used = new Set<string>();
    for (const e of exprs)
      for (const m of metricNames(e)) {
        used.add(m);
        expect(exported, `dashboard expr ${e}`).toContain(m);
      }
    // The five contract metrics are all on the dashboard.
    for (const m of ["keepalive_attempt_count", "keepalive_success_count", "keepalive_failure_count", "keepalive_latency_ms", "keepalive_auto_disabled_total"]) expect(used).toContain(m);
  });
});
