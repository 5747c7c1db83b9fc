import assert from "node:assert/strict";
import { listenTls, readTlsCertificate, TlsError } from "../../lib/net/tls.ts";
import { makePki, tlsTest } from "../_tls.ts";

const FAKE_CERT = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley_tls_files_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The TlsError `promise` rejects with; fails on any other outcome. */
async function tlsError(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => null, (e) => e);
  assert.ok(error instanceof TlsError, `expected a TlsError, got ${error}`);
  assert.doesNotMatch(error.message, /\n/, "one line");
  return error.message;
}

Deno.test("readTlsCertificate names the flag and file that is missing, unreadable or not PEM of its kind", async () => {
  await withDir(async (dir) => {
    const cert = `${dir}/cert.pem`;
    const key = `${dir}/key.pem`;
    await Deno.writeTextFile(cert, FAKE_CERT);
    await Deno.writeTextFile(key, FAKE_KEY);
    assert.match(
      await tlsError(readTlsCertificate(`${dir}/nope.pem`, key)),
      new RegExp(`^cannot read --tls-cert ${dir}/nope.pem: no such file$`),
    );
    assert.match(
      await tlsError(readTlsCertificate(cert, `${dir}/nope.pem`)),
      /^cannot read --tls-key \S+nope.pem: no such file$/,
    );
    assert.match(await tlsError(readTlsCertificate(dir, key)), /^cannot read --tls-cert /);
    await Deno.writeTextFile(`${dir}/text.txt`, "hello\n");
    assert.match(
      await tlsError(readTlsCertificate(`${dir}/text.txt`, key)),
      /^--tls-cert \S+text.txt holds no PEM certificate$/,
    );
    assert.match(
      await tlsError(readTlsCertificate(cert, `${dir}/text.txt`)),
      /^--tls-key \S+text.txt holds no PEM private key$/,
    );
    // The certificate given for the key: a common mix-up.
    assert.match(await tlsError(readTlsCertificate(cert, cert)), /holds no PEM private key/);
    await Deno.writeTextFile(
      `${dir}/enc.pem`,
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    assert.match(
      await tlsError(readTlsCertificate(cert, `${dir}/enc.pem`)),
      /is encrypted; Parley needs the key without a password/,
    );
    const ok = await readTlsCertificate(cert, key);
    assert.deepEqual(ok, { cert: FAKE_CERT, key: FAKE_KEY, certFile: cert, keyFile: key });
  });
});

tlsTest(
  "listenTls names a key that does not match its certificate, and PEM that holds nothing usable",
  async () => {
    await withDir(async (dir) => {
      const a = await makePki(dir, "a");
      const b = await makePki(dir, "b");
      const listen = (cert: string, key: string) =>
        Promise.resolve().then(() =>
          listenTls("127.0.0.1", 0, { cert, key, certFile: "c.pem", keyFile: "k.pem" }, true)
        );
      assert.equal(
        await tlsError(listen(a.cert, b.key)),
        "--tls-key k.pem does not match the certificate in c.pem",
      );
      assert.match(await tlsError(listen(FAKE_CERT, a.key)), /^--tls-cert c\.pem holds no usable/);
      assert.match(await tlsError(listen(a.cert, FAKE_KEY)), /^--tls-key k\.pem holds no usable/);
      const good = await listen(a.cert, a.key);
      good.close();
    });
  },
);
