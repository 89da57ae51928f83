import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A PEM file the test kit wrote, by path and content. */
export interface PemFile {
  readonly path: string;
  readonly pem: string;
}

/**
 * A private certificate authority made for one test run with `openssl`: a CA, a server
 * certificate for `127.0.0.1`, `localhost` and `redis.test`, a client certificate signed by the
 * CA, and a second CA that signed nothing the servers use (for "wrong CA" cases).
 */
export interface TestPki {
  readonly dir: string;
  readonly ca: PemFile;
  readonly serverCert: PemFile;
  readonly serverKey: PemFile;
  readonly clientCert: PemFile;
  readonly clientKey: PemFile;
  /** A CA unrelated to the servers' certificates. */
  readonly otherCa: PemFile;
  /** A server certificate for 127.0.0.1 signed by the other CA (a server a client trusting only `otherCa` accepts). */
  readonly otherCaServerCert: PemFile;
  readonly otherCaServerKey: PemFile;
  /** A server certificate signed by the CA for `other.test` only (for "wrong server name" cases). */
  readonly otherNameCert: PemFile;
  readonly otherNameKey: PemFile;
  /** Deletes the directory. */
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? e.message} (apt-get install openssl)`, { cause: err });
  }
}

/** Makes a fresh private CA and the certificates a TLS test needs, in a new temp directory. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "vmk-pki-"));
  const file = (name: string): PemFile => ({ path: join(dir, name), pem: readFileSync(join(dir, name), "utf8") });
  const ca = (name: string, subject: string) => {
    openssl(
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-subj",
        subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ],
      dir,
    );
  };
  const leaf = (name: string, subject: string, ext: string, signer = "ca") => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], dir);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${signer}.crt`, "-CAkey", `${signer}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`], dir);
  };
  ca("ca", "/CN=vmk test CA");
  ca("other-ca", "/CN=vmk other CA");
  leaf("server", "/CN=redis.test", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:redis.test\nextendedKeyUsage=serverAuth,clientAuth\n");
  leaf("client", "/CN=vmk client", "extendedKeyUsage=clientAuth\n");
  leaf("other-name", "/CN=other.test", "subjectAltName=DNS:other.test\nextendedKeyUsage=serverAuth,clientAuth\n");
  leaf("other-ca-server", "/CN=redis.test", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:redis.test\nextendedKeyUsage=serverAuth,clientAuth\n", "other-ca");
  return {
    dir,
    ca: file("ca.crt"),
    serverCert: file("server.crt"),
    serverKey: file("server.key"),
    clientCert: file("client.crt"),
    clientKey: file("client.key"),
    otherCa: file("other-ca.crt"),
    otherNameCert: file("other-name.crt"),
    otherNameKey: file("other-name.key"),
    otherCaServerCert: file("other-ca-server.crt"),
    otherCaServerKey: file("other-ca-server.key"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A TLS-only server set-up of the test kit's Redis harnesses: the test CA's certificates, client certificates required or not. */
export interface TestTls {
  readonly pki: TestPki;
  /** Clients must present a certificate the CA signed (`tls-auth-clients yes`). @defaultValue true */
  readonly requireClientCert?: boolean;
}

/**
 * The redis-server directives of a server that speaks TLS only, on `port` (`port 0`, `tls-port`),
 * presenting the CA's server certificate (also its client certificate when it connects to
 * another server: a master, another Sentinel, the cluster bus). Name-value pairs, for a command
 * line (`--name value`) or a config file (`name value`).
 */
export function tlsServerDirectives(tls: TestTls, port: number): Array<readonly [string, string]> {
  return [
    ["port", "0"],
    ["tls-port", String(port)],
    ["tls-cert-file", tls.pki.serverCert.path],
    ["tls-key-file", tls.pki.serverKey.path],
    ["tls-ca-cert-file", tls.pki.ca.path],
    ["tls-auth-clients", tls.requireClientCert === false ? "no" : "yes"],
  ];
}

/** What a client of the test kit's TLS servers needs, as Node's (and ioredis') `tls` options: the CA and the client certificate (PEM). */
export interface TestTlsClient {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** The {@link TestTlsClient} options of a test CA. */
export function tlsClientOptions(pki: TestPki): TestTlsClient {
  return { ca: pki.ca.pem, cert: pki.clientCert.pem, key: pki.clientKey.pem };
}
