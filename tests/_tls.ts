/**
 * Certificates for the TLS tests, made at test time with `openssl`: a CA and a server certificate
 * for `localhost` and `127.0.0.1` signed by it. Where openssl is missing the TLS tests report
 * themselves ignored, except under CI (`CI` set), where they fail.
 */

/** Why TLS tests cannot run here, or null when they can. */
export const OPENSSL_MISSING: string | null = (() => {
  try {
    const out = new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync();
    return out.success ? null : "openssl version failed";
  } catch {
    return "openssl is not installed";
  }
})();

/**
 * A test needing openssl: ignored (saying why) where it is missing, unless `CI` is set, where it
 * runs and fails on the missing tool instead of passing silently.
 */
export function tlsTest(name: string, fn: () => Promise<void>): void {
  const skip = OPENSSL_MISSING !== null && !Deno.env.get("CI");
  Deno.test({
    name: skip ? `${name} (ignored: ${OPENSSL_MISSING})` : name,
    ignore: skip,
    fn: async () => {
      if (OPENSSL_MISSING !== null) throw new Error(`TLS tests need openssl: ${OPENSSL_MISSING}`);
      await fn();
    },
  });
}

/** PEM files of one CA and a server certificate it signed. */
export interface TestPki {
  /** The CA certificate (PEM text) a client trusts. */
  ca: string;
  /** Paths of the server's certificate and key files. */
  certFile: string;
  keyFile: string;
  /** Their PEM text. */
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Makes a CA named `name` and a server certificate for localhost/127.0.0.1 in `dir`. */
export async function makePki(dir: string, name: string): Promise<TestPki> {
  const p = (file: string) => `${dir}/${name}_${file}`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.pem"),
    "-days",
    "2",
    "-subj",
    `/CN=Parley test CA ${name}`,
  ], dir);
  await openssl(
    ["req", ...ec, "-keyout", p("key.pem"), "-out", p("csr.pem"), "-subj", "/CN=localhost"],
    dir,
  );
  await Deno.writeTextFile(
    p("ext.cnf"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    p("csr.pem"),
    "-CA",
    p("ca.pem"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-out",
    p("cert.pem"),
    "-days",
    "2",
    "-extfile",
    p("ext.cnf"),
  ], dir);
  return {
    ca: await Deno.readTextFile(p("ca.pem")),
    certFile: p("cert.pem"),
    keyFile: p("key.pem"),
    cert: await Deno.readTextFile(p("cert.pem")),
    key: await Deno.readTextFile(p("key.pem")),
  };
}

/** A fetch that trusts only `ca` (its own connection pool); close it after use. */
export function trustingClient(ca: string): Deno.HttpClient {
  return Deno.createHttpClient({ caCerts: [ca] });
}

/**
 * Whether a fresh TLS connection to `port` that trusts only `ca` completes its handshake (true)
 * or rejects the certificate it is given (false): the certificate the server gives new
 * connections is the one `ca` signed. Other failures throw.
 */
export async function handshakes(port: number, ca: string): Promise<boolean> {
  for (let attempt = 1;; attempt++) {
    let conn: Deno.TlsConn | null = null;
    try {
      conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
      await conn.handshake();
      return true;
    } catch (error) {
      // A reload resets what the kernel had queued on the replaced socket at that instant
      // (README, "HTTPS"); that says nothing about the certificate, so ask again.
      if (error instanceof Deno.errors.ConnectionReset && attempt < 3) continue;
      if (error instanceof Deno.errors.InvalidData && /certificate/.test(error.message)) {
        return false;
      }
      throw error;
    } finally {
      try {
        conn?.close();
      } catch {
        // closed already
      }
    }
  }
}
