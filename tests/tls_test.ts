/**
 * HTTPS end to end (`--tls-cert`, `--tls-key`): certificates made at test time with openssl, the
 * app in-process for the exchanges and `main.ts` in a subprocess for exit codes and SIGHUP.
 */
import assert from "node:assert/strict";
import { type App, startApp } from "../lib/app.ts";
import { HSTS, SECURITY_HEADERS } from "../lib/http/response.ts";
import { Logger } from "../lib/log.ts";
import { handshakes, makePki, type TestPki, tlsTest, trustingClient } from "./_tls.ts";
import { eventually, parseMetrics, testConfig } from "./_server.ts";
import { ServerProcess, startFailure } from "./storage/_process.ts";

/** Makes the certificates of a test in a temp dir, runs `fn`, removes the dir. */
async function withPki(
  names: string[],
  fn: (dir: string, pkis: TestPki[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "parley_tls_" });
  try {
    const pkis = [];
    for (const name of names) pkis.push(await makePki(dir, name));
    await fn(dir, pkis);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Copies `pki`'s certificate and key to files a test may then replace (for reloads). */
async function livePair(dir: string, pki: TestPki): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/live_cert.pem`;
  const key = `${dir}/live_key.pem`;
  await Deno.writeTextFile(cert, pki.cert);
  await Deno.writeTextFile(key, pki.key);
  return { cert, key };
}

/** The app over HTTPS with `pki`'s certificate; `flags` add to the test defaults. */
async function withTlsApp(
  pki: TestPki,
  flags: string[],
  fn: (app: App, lines: string[]) => Promise<void>,
): Promise<void> {
  const lines: string[] = [];
  const app = await startApp(
    testConfig(["--tls-cert", pki.certFile, "--tls-key", pki.keyFile, ...flags]),
    { logger: new Logger("info", "text", (line) => lines.push(line)) },
  );
  try {
    await fn(app, lines);
  } finally {
    await app.shutdown(2000);
  }
}

/** `https://localhost:PORT`: the name the test certificates are for. */
function httpsUrl(app: App): string {
  return `https://localhost:${app.addr.port}`;
}

function assertSecurityHeaders(headers: Headers, tls: boolean, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    assert.equal(headers.get(name), value, `${what}: ${name}`);
  }
  assert.equal(headers.get("strict-transport-security"), tls ? HSTS : null, `${what}: HSTS`);
}

tlsTest(
  "HTTPS: a request succeeds with the certificate trusted, and answers carry HSTS",
  async () => {
    await withPki(["a"], async (_dir, [pki]) => {
      await withTlsApp(pki!, [], async (app) => {
        assert.match(app.url, /^https:\/\/127\.0\.0\.1:\d+$/, "the start URL says https");
        const client = trustingClient(pki!.ca);
        try {
          for (const path of ["/healthz", "/", "/api/nowhere"]) {
            const res = await fetch(httpsUrl(app) + path, { client });
            await res.body?.cancel();
            assert.equal(res.status, path === "/api/nowhere" ? 404 : 200, path);
            assertSecurityHeaders(res.headers, true, path);
          }
          const created = await fetch(httpsUrl(app) + "/api/session", {
            client,
            method: "POST",
            body: JSON.stringify({ nick: "alice" }),
          });
          assert.equal(created.status, 201);
          assert.equal((await created.json()).nick, "alice");
        } finally {
          client.close();
        }
        // Without the CA the certificate is not trusted: it really is TLS with our certificate.
        await assert.rejects(fetch(httpsUrl(app) + "/healthz"));
      });
    });
  },
);

tlsTest(
  "HTTPS: plain HTTP to the TLS port is refused and counted without harming an open HTTPS connection",
  async () => {
    await withPki(["a"], async (_dir, [pki]) => {
      await withTlsApp(pki!, [], async (app) => {
        const tls = await Deno.connectTls({
          hostname: "localhost",
          port: app.addr.port,
          caCerts: [pki!.ca],
        });
        try {
          const ask = async () => {
            await writeAll(tls, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
            return await readHead(tls);
          };
          assert.match(await ask(), /^HTTP\/1\.1 200 OK\r\n/);

          const plain = await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port });
          try {
            await writeAll(plain, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
            const got = await readToEof(plain, 3000);
            assert.notEqual(got, "timeout", "the server closes the plain connection");
            assert.doesNotMatch(got as string, /HTTP\/1\.1/, "no HTTP answer in the clear");
          } finally {
            plain.close();
          }

          // The same TLS connection goes on working.
          assert.match(await ask(), /^HTTP\/1\.1 200 OK\r\n/);
          const metrics = parseMetrics(await (await metricsText(app, pki!)).text());
          assert.equal(metrics.get("parley_tls_handshake_failures_total"), 1);
        } finally {
          tls.close();
        }
      });
    });
  },
);

tlsTest(
  "HTTPS: a peer that never starts its handshake is given up at the header timeout and counted",
  async () => {
    await withPki(["a"], async (_dir, [pki]) => {
      await withTlsApp(pki!, ["--header-timeout", "0.3"], async (app) => {
        const silent = await Deno.connect({ hostname: "127.0.0.1", port: app.addr.port });
        try {
          await eventually(() => app.server.stats.tlsHandshakeFailures === 1, {
            what: () => "the handshake deadline",
          });
          // Its place is free for others. (Deno itself keeps the socket until the peer sends or
          // closes: it finishes a handshake before it shuts a TLS stream down.)
          assert.equal(app.server.connections, 0);
        } finally {
          silent.close();
        }
      });
    });
  },
);

tlsTest(
  "HTTPS: a reload serves the new certificate to new connections; one that fails keeps the old",
  async () => {
    await withPki(["a", "b"], async (dir, [a, b]) => {
      const { cert, key } = await livePair(dir, a!);
      await withTlsApp({ ...a!, certFile: cert, keyFile: key }, [], async (app, lines) => {
        const port = app.addr.port;
        assert.equal(await handshakes(port, a!.ca), true);
        assert.equal(await handshakes(port, b!.ca), false);

        // A mismatched pair: the warning says why, and the old certificate stays.
        await Deno.writeTextFile(cert, b!.cert);
        assert.equal(await app.reloadTls(), false);
        const warned = lines.filter((l) => / WARN /.test(l));
        assert.equal(warned.length, 1, lines.join("\n"));
        assert.match(warned[0]!, /TLS reload failed; keeping the current certificate/);
        assert.match(warned[0]!, /does not match/);
        assert.equal(await handshakes(port, a!.ca), true);

        await Deno.writeTextFile(key, b!.key);
        assert.equal(await app.reloadTls(), true);
        assert.equal(lines.filter((l) => / INFO .*TLS certificate reloaded/.test(l)).length, 1);
        assert.equal(await handshakes(port, b!.ca), true);
        assert.equal(await handshakes(port, a!.ca), false);
        // The clients that did not trust the certificate they got count as failures.
        await eventually(() => app.server.stats.tlsHandshakeFailures === 2, {
          what: () => `2 failures, not ${app.server.stats.tlsHandshakeFailures}`,
        });
      });
    });
  },
);

tlsTest(
  "SIGHUP serves a new certificate to the next connection while a long poll on the old one is still answered",
  async () => {
    await withPki(["a", "b"], async (dir, [a, b]) => {
      const { cert, key } = await livePair(dir, a!);
      await withMain(["--tls-cert", cert, "--tls-key", key], async (server, url) => {
        const base = `https://localhost:${new URL(url).port}`;
        assert.match(url, /^https:/);
        const oldClient = trustingClient(a!.ca);
        const newClient = trustingClient(b!.ca);
        try {
          const call = async (
            client: Deno.HttpClient,
            method: string,
            path: string,
            token?: string,
            body?: unknown,
          ) => {
            const res = await fetch(base + path, {
              client,
              method,
              headers: token ? { authorization: `Bearer ${token}` } : {},
              ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            });
            return { status: res.status, body: await res.json() };
          };
          const session = async (nick: string) =>
            (await call(oldClient, "POST", "/api/session", undefined, { nick })).body;
          const alice = await session("alice");
          const bob = await session("bob");
          for (const token of [alice.token, bob.token]) {
            assert.equal(
              (await call(oldClient, "POST", "/api/rooms/lobby/join", token)).status,
              200,
            );
          }
          const start = await call(oldClient, "GET", "/api/events?wait=0", alice.token);
          // The long poll, on a connection made with certificate A.
          const poll = call(
            oldClient,
            "GET",
            `/api/events?wait=30&cursor=${start.body.cursor}`,
            alice.token,
          );

          await Deno.writeTextFile(cert, b!.cert);
          await Deno.writeTextFile(key, b!.key);
          server.kill("SIGHUP");
          await server.waitFor(/TLS certificate reloaded/);

          const port = Number(new URL(url).port);
          assert.equal(await handshakes(port, b!.ca), true, "the next connection gets B");
          assert.equal(await handshakes(port, a!.ca), false, "and no longer A");
          const sent = await call(newClient, "POST", "/api/rooms/lobby/messages", bob.token, {
            text: "after the reload",
          });
          assert.equal(sent.status, 201);

          const answered = await poll;
          assert.equal(answered.status, 200);
          assert.deepEqual(
            answered.body.events.map((e: { text?: string }) => e.text),
            ["after the reload"],
          );
        } finally {
          oldClient.close();
          newClient.close();
        }
      });
    });
  },
);

tlsTest(
  "SIGHUP with a key that does not match keeps the old certificate and logs one warning",
  async () => {
    await withPki(["a", "b"], async (dir, [a, b]) => {
      const { cert, key } = await livePair(dir, a!);
      await withMain(["--tls-cert", cert, "--tls-key", key], async (server, url) => {
        await Deno.writeTextFile(key, b!.key);
        server.kill("SIGHUP");
        const line = await server.waitFor(/WARN .*TLS reload failed/);
        assert.match(line, /does not match the certificate/);
        const port = Number(new URL(url).port);
        assert.equal(await handshakes(port, a!.ca), true, "the old certificate is still served");
        // A file gone is the same: a warning, and serving goes on.
        await Deno.remove(cert);
        server.kill("SIGHUP");
        assert.match(await server.waitFor(/WARN .*TLS reload failed/), /no such file/);
        assert.equal(await handshakes(port, a!.ca), true);
        assert.equal(server.stderr.split("\n").filter((l) => /WARN/.test(l)).length, 2);
      });
    });
  },
);

tlsTest("a key that does not match its certificate is one line and exit 1", async () => {
  await withPki(["a", "b"], async (_dir, [a, b]) => {
    const { code, stderr } = await startFailure("memory", [
      "--tls-cert",
      a!.certFile,
      "--tls-key",
      b!.keyFile,
    ]);
    assert.equal(code, 1, stderr);
    assert.equal(nonEmptyLines(stderr).length, 1, stderr);
    assert.match(stderr, /^parley: --tls-key \S+ does not match the certificate in \S+\n$/);
  });
});

tlsTest(
  "a second HTTPS Parley on the port of a running one exits 1: the port is not shared",
  async () => {
    await withPki(["a"], async (_dir, [a]) => {
      const tls = ["--tls-cert", a!.certFile, "--tls-key", a!.keyFile];
      await withMain(tls, async (_server, url) => {
        const port = new URL(url).port;
        const { code, stderr } = await startFailure("memory", [...tls, "--port", port]);
        assert.equal(code, 1, stderr);
        assert.equal(nonEmptyLines(stderr).length, 1, stderr);
        assert.match(
          stderr,
          new RegExp(`^parley: cannot listen on 127\\.0\\.0\\.1:${port}: .*in use`),
        );
      });
    });
  },
);

// --- helpers ---------------------------------------------------------------------------------

async function metricsText(app: App, pki: TestPki): Promise<Response> {
  const client = trustingClient(pki.ca);
  try {
    const res = await fetch(httpsUrl(app) + "/metrics", { client });
    const text = await res.text();
    return new Response(text, { status: res.status });
  } finally {
    client.close();
  }
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  let bytes = new TextEncoder().encode(text);
  while (bytes.byteLength > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** Reads one whole response (head and Content-Length body); returns its head. */
async function readHead(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(65536);
  let text = "";
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
      if (text.length >= end + 4 + length) return text.slice(0, end + 4);
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF after ${JSON.stringify(text)}`);
    text += new TextDecoder("latin1").decode(buf.subarray(0, n));
  }
}

/** Everything `conn` receives until EOF (or a read error), or "timeout" after `ms`. */
async function readToEof(conn: Deno.Conn, ms: number): Promise<string | "timeout"> {
  const buf = new Uint8Array(4096);
  let text = "";
  const deadline = Date.now() + ms;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
    if (n === "timeout") return "timeout";
    if (n === null) return text;
    text += new TextDecoder("latin1").decode(buf.subarray(0, n));
  }
}

function nonEmptyLines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/**
 * Starts `main.ts` with `args` on the memory store, runs `fn` with it and its URL, then stops it
 * with SIGTERM: a clean stop (exit 0) with no ERROR line.
 */
async function withMain(
  args: string[],
  fn: (server: ServerProcess, url: string) => Promise<void>,
): Promise<void> {
  const server = await ServerProcess.start("memory", args);
  try {
    await fn(server, await server.url());
    const { status, stderr } = await server.stop("SIGTERM");
    assert.equal(status.code, 0, stderr);
    assert.doesNotMatch(stderr, /ERROR/);
  } finally {
    await server.stop("SIGKILL");
  }
}
