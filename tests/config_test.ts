/** The command line: DESIGN.md's configuration table, bad values, and --help. */
import assert from "node:assert/strict";
import {
  type Config,
  ConfigError,
  FLAGS,
  parseCommand,
  parseStoreUrl,
  usage,
} from "../lib/config.ts";

function serve(args: string[]): Config {
  const command = parseCommand(args);
  assert.equal(command.kind, "serve");
  return (command as { kind: "serve"; config: Config }).config;
}

Deno.test("parseCommand defaults equal DESIGN.md's configuration table", () => {
  assert.deepEqual(serve([]), {
    host: "0.0.0.0",
    port: 8080,
    store: { kind: "sqlite", path: "parley.db" },
    history: 1000,
    maxMessage: 2000,
    maxBody: 65536,
    maxHeader: 16384,
    maxTarget: 8192,
    headerTimeout: 10,
    bodyTimeout: 30,
    idleTimeout: 75,
    writeTimeout: 30,
    maxUnsent: 65536,
    maxConns: 10000,
    maxConnsPerIp: 0,
    sockets: "deno",
    trimIdle: 1,
    presenceGrace: 60,
    sessionRate: { tokens: 30, periodMs: 60_000 },
    sendRate: { tokens: 10, periodMs: 1000 },
    shutdownTimeout: 10,
    logLevel: "info",
    logFormat: "text",
    trustProxy: false,
    storeTimeout: 5,
    adminTokenFile: null,
    editWindow: 15,
    redisPrefix: "parley",
    redisCaFile: null,
    tlsCert: null,
    tlsKey: null,
  });
});

Deno.test("parseCommand takes every flag, in both --flag value and --flag=value form", () => {
  const config = serve([
    "--host=127.0.0.1",
    "--port",
    "0",
    "--store",
    "memory",
    "--history=5",
    "--max-message",
    "10",
    "--max-body",
    "100",
    "--max-header",
    "4096",
    "--max-target",
    "1024",
    "--header-timeout",
    "1.5",
    "--body-timeout",
    "2",
    "--idle-timeout",
    "3",
    "--write-timeout",
    "4",
    "--max-unsent",
    "2048",
    "--max-conns",
    "7",
    "--max-conns-per-ip",
    "2",
    "--sockets",
    "node",
    "--trim-idle",
    "0",
    "--presence-grace",
    "0.25",
    "--session-rate",
    "2/min",
    "--send-rate",
    "0",
    "--shutdown-timeout",
    "4",
    "--log-level",
    "debug",
    "--log-format",
    "json",
    "--trust-proxy",
    "--store-timeout",
    "2.5",
    "--admin-token-file",
    "/etc/parley/admin",
    "--edit-window=0",
    "--redis-prefix",
    "chat-2",
    "--redis-ca-file",
    "/etc/ssl/redis-ca.pem",
    "--tls-cert",
    "/etc/parley/cert.pem",
    "--tls-key=/etc/parley/key.pem",
  ]);
  assert.deepEqual(config, {
    host: "127.0.0.1",
    port: 0,
    store: { kind: "memory" },
    history: 5,
    maxMessage: 10,
    maxBody: 100,
    maxHeader: 4096,
    maxTarget: 1024,
    headerTimeout: 1.5,
    bodyTimeout: 2,
    idleTimeout: 3,
    writeTimeout: 4,
    maxUnsent: 2048,
    maxConns: 7,
    maxConnsPerIp: 2,
    sockets: "node",
    trimIdle: 0,
    presenceGrace: 0.25,
    sessionRate: { tokens: 2, periodMs: 60_000 },
    sendRate: { tokens: 0, periodMs: 1000 },
    shutdownTimeout: 4,
    logLevel: "debug",
    logFormat: "json",
    trustProxy: true,
    storeTimeout: 2.5,
    adminTokenFile: "/etc/parley/admin",
    editWindow: 0,
    redisPrefix: "chat-2",
    redisCaFile: "/etc/ssl/redis-ca.pem",
    tlsCert: "/etc/parley/cert.pem",
    tlsKey: "/etc/parley/key.pem",
  });
});

Deno.test("hosts: IPv4, IPv6 (bracketed or not) and host names", () => {
  assert.equal(serve(["--host", "10.0.0.255"]).host, "10.0.0.255");
  assert.equal(serve(["--host", "::1"]).host, "::1");
  assert.equal(serve(["--host", "[::]"]).host, "::");
  assert.equal(serve(["--host", "localhost"]).host, "localhost");
  assert.equal(serve(["--host", "chat-1.example.org"]).host, "chat-1.example.org");
});

Deno.test("rates take seconds, minutes and hours", () => {
  assert.deepEqual(serve(["--send-rate", "5/s"]).sendRate, { tokens: 5, periodMs: 1000 });
  assert.deepEqual(serve(["--send-rate", "5/sec"]).sendRate, { tokens: 5, periodMs: 1000 });
  assert.deepEqual(serve(["--send-rate", "5/m"]).sendRate, { tokens: 5, periodMs: 60_000 });
  assert.deepEqual(serve(["--session-rate", "100/h"]).sessionRate, {
    tokens: 100,
    periodMs: 3_600_000,
  });
  assert.equal(serve(["--session-rate", "0"]).sessionRate.tokens, 0);
});

Deno.test("--store takes memory, sqlite:PATH and redis://HOST:PORT/DB", () => {
  assert.deepEqual(parseStoreUrl("memory"), { kind: "memory" });
  assert.deepEqual(parseStoreUrl("sqlite:/var/lib/parley.db"), {
    kind: "sqlite",
    path: "/var/lib/parley.db",
  });
  assert.deepEqual(parseStoreUrl("redis://cache:6380/2"), {
    kind: "redis",
    tls: false,
    hostname: "cache",
    port: 6380,
    db: 2,
  });
  assert.deepEqual(parseStoreUrl("redis://cache"), {
    kind: "redis",
    tls: false,
    hostname: "cache",
    port: 6379,
    db: 0,
  });
});

Deno.test("--store redis:// takes a password, a user, TLS, IPv6 in brackets and a trailing slash", () => {
  const redis = (text: string) => parseStoreUrl(text) as Record<string, unknown>;
  assert.deepEqual(redis("redis://:s3cret@10.0.0.7:6380/3"), {
    kind: "redis",
    tls: false,
    hostname: "10.0.0.7",
    port: 6380,
    db: 3,
    password: "s3cret",
  });
  assert.deepEqual(redis("rediss://alice:s%40cr%3Aet%25@cache.example"), {
    kind: "redis",
    tls: true,
    hostname: "cache.example",
    port: 6379,
    db: 0,
    username: "alice",
    password: "s@cr:et%",
  });
  assert.equal(redis("redis://:p@ss@host").password, "p@ss", "the last @ ends the password");
  assert.deepEqual(redis("redis://[::1]:7000/1"), {
    kind: "redis",
    tls: false,
    hostname: "::1",
    port: 7000,
    db: 1,
  });
  assert.equal(redis("rediss://[2001:db8::a]").port, 6379);
  assert.equal(redis("redis://127.0.0.1:6379/").db, 0);
});

Deno.test("a malformed --store redis:// URL is one ConfigError line that hides the password", () => {
  const bad: [string, string][] = [
    ["redis://", "host is missing"],
    ["rediss://:6379", "host is missing"],
    ["redis://::1:6379", "IPv6 address goes in brackets"],
    ["redis://[::1", "must be an IPv6 address"],
    ["redis://[cache]:6379", "must be an IPv6 address"],
    ["redis://[::1]6379", `"6379" after the address`],
    ["redis://ho st:6379", "not a host name"],
    ["redis://host:", "port must be a number"],
    ["redis://host:0", "port must be a number"],
    ["redis://host:65536", "port must be a number"],
    ["redis://host:6379?db=1", "port must be a number"],
    ["redis://host/1000001", "database must be a number"],
    ["redis://host:6379/x", "database must be a number"],
    ["redis://host/0/1", "database must be a number"],
    ["redis://host/-1", "database must be a number"],
    ["redis://topsecret@host", "password after a colon"],
    ["redis://:topsecret%zz@host", "malformed %-escape"],
    ["redis://:@host", "password is empty"],
    ["redis://:topsecret@[::1", "must be an IPv6 address"],
    ["redis://alice:topsecret@host/db", "database must be a number"],
  ];
  for (const [url, reason] of bad) {
    assert.throws(
      () => parseStoreUrl(url),
      (error: Error) => {
        assert.ok(error instanceof ConfigError, url);
        assert.ok(error.message.includes(reason), `${url}: ${error.message}`);
        assert.ok(!error.message.includes("\n"), `${url}: one line`);
        assert.ok(!error.message.includes("topsecret"), `${url}: ${error.message}`);
        return true;
      },
    );
  }
});

Deno.test("a lower --max-header alone lowers the default --max-target with it", () => {
  const config = serve(["--max-header", "1024"]);
  assert.equal(config.maxHeader, 1024);
  assert.equal(config.maxTarget, 1024);
  assert.equal(serve(["--max-header", "65536"]).maxTarget, 8192);
});

Deno.test("every bad flag value is a ConfigError with one line naming the flag", () => {
  const bad: [string[], string][] = [
    [["--host", ""], "--host"],
    [["--host", "a b"], "--host"],
    [["--port", "x"], "--port"],
    [["--port", "65536"], "--port"],
    [["--port", "-1"], "--port must be a whole number from 0 to 65535"],
    [["--history", "-3"], "--history must be a whole number"],
    [["--port", "1", "--port", "2"], "--port is given more than once"],
    [["--trust-proxy", "--trust-proxy"], "--trust-proxy is given more than once"],
    [["--host", "999.1.1.1"], "--host"],
    [["--host", "1.2.3"], "--host"],
    [["--host", "::g"], "--host"],
    [["--host", "under_score"], "--host"],
    [["--store-timeout", "0"], "--store-timeout"],
    [["--redis-prefix", "a:b"], "--redis-prefix"],
    [["--redis-prefix", ""], "--redis-prefix"],
    [["--write-timeout", "0"], "--write-timeout"],
    [["--max-unsent", "100"], "--max-unsent"],
    [["--edit-window", "-1"], "--edit-window"],
    [["--edit-window", "1.5"], "--edit-window"],
    [["--port", "80.5"], "--port"],
    [["--port", ""], "--port"],
    [["--port", "1e3"], "--port"],
    [["--store", "postgres://db"], "--store"],
    [["--store", "sqlite:"], "--store"],
    [["--store", "redis://"], "--store"],
    [["--store", "redis://host:99999"], "port"],
    [["--store", "redis://host:6379/x"], "--store"],
    [["--history", "0"], "--history"],
    [["--history", "many"], "--history"],
    [["--max-message", "0"], "--max-message"],
    [["--max-body", "10"], "--max-body"],
    [["--max-header", "100"], "--max-header"],
    [["--max-target", "8"], "--max-target"],
    [["--max-header", "1024", "--max-target", "2048"], "--max-target"],
    [["--header-timeout", "0"], "--header-timeout"],
    [["--body-timeout", "-5"], "--body-timeout"],
    [["--idle-timeout", "soon"], "--idle-timeout"],
    [["--max-conns", "0"], "--max-conns"],
    [["--max-conns-per-ip", "-1"], "--max-conns-per-ip"],
    [["--presence-grace", "0"], "--presence-grace"],
    [["--presence-grace", "1m"], "--presence-grace"],
    [["--session-rate", "10"], "--session-rate"],
    [["--session-rate", "10/day"], "--session-rate"],
    [["--send-rate", "fast"], "--send-rate"],
    [["--send-rate", "-1/s"], "--send-rate"],
    [["--shutdown-timeout", "x"], "--shutdown-timeout"],
    [["--log-level", "verbose"], "--log-level"],
    [["--log-format", "xml"], "--log-format"],
    [["--sockets", "uv"], "--sockets"],
    [["--trim-idle", "-1"], "--trim-idle"],
    [["--trim-idle", "soon"], "--trim-idle"],
    [["--trust-proxy=yes"], "--trust-proxy"],
    [["--port"], "--port"],
    [["--nope"], "--nope"],
    [["-p", "80"], "-p"],
    [["serve"], "serve"],
  ];
  for (const [args, mention] of bad) {
    assert.throws(
      () => parseCommand(args),
      (error: Error) => {
        assert.ok(error instanceof ConfigError, `${args.join(" ")}: ${error}`);
        assert.ok(!error.message.includes("\n"), `${args.join(" ")}: more than one line`);
        assert.ok(error.message.includes(mention), `${args.join(" ")}: "${error.message}"`);
        return true;
      },
      args.join(" "),
    );
  }
});

Deno.test("--help and --version win over other flags", () => {
  assert.deepEqual(parseCommand(["--help"]), { kind: "help" });
  assert.deepEqual(parseCommand(["--port", "1", "--help"]), { kind: "help" });
  assert.deepEqual(parseCommand(["--version"]), { kind: "version" });
});

Deno.test("the --help text lists every flag with its default", () => {
  const text = usage("9.9.9");
  assert.match(text, /9\.9\.9/);
  const documented: Record<string, string> = {
    host: "0.0.0.0",
    port: "8080",
    store: "sqlite:parley.db",
    history: "1000",
    "max-message": "2000",
    "max-body": "65536",
    "max-header": "16384",
    "max-target": "8192",
    "header-timeout": "10",
    "body-timeout": "30",
    "idle-timeout": "75",
    "write-timeout": "30",
    "max-unsent": "65536",
    "max-conns": "10000",
    "max-conns-per-ip": "0",
    sockets: "deno",
    "trim-idle": "1",
    "presence-grace": "60",
    "session-rate": "30/min",
    "send-rate": "10/s",
    "shutdown-timeout": "10",
    "log-level": "info",
    "log-format": "text",
    "trust-proxy": "off",
    "store-timeout": "5",
    "admin-token-file": "none",
    "edit-window": "15",
    "redis-prefix": "parley",
    "redis-ca-file": "none",
    "tls-cert": "none",
    "tls-key": "none",
  };
  assert.deepEqual(
    Object.keys(FLAGS).sort(),
    Object.keys(documented).filter((f) => f !== "trust-proxy").sort(),
  );
  const lines = text.split("\n");
  for (const [flag, value] of Object.entries(documented)) {
    const line = lines.find((l) =>
      l.trimStart().startsWith(`--${flag} `) || l.trim() === `--${flag}`
    );
    assert.ok(line, `--help does not list --${flag}`);
    assert.ok(line.includes(`(default: ${value})`), `--${flag} shows no default ${value}: ${line}`);
  }
  for (const flag of ["--help", "--version"]) {
    assert.ok(lines.some((l) => l.trimStart().startsWith(flag)));
  }
});

Deno.test("--tls-cert and --tls-key come together: one alone is a ConfigError naming the other", () => {
  for (
    const [args, missing] of [
      [["--tls-cert", "cert.pem"], "--tls-key"],
      [["--tls-key", "key.pem"], "--tls-cert"],
      [["--tls-cert", "cert.pem", "--tls-key", ""], "--tls-key"],
    ] as const
  ) {
    assert.throws(
      () => parseCommand([...args]),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, new RegExp(`${missing} too`));
        assert.doesNotMatch(error.message, /\n/);
        return true;
      },
      args.join(" "),
    );
  }
  const both = serve(["--tls-cert", "c.pem", "--tls-key", "k.pem"]);
  assert.equal(both.tlsCert, "c.pem");
  assert.equal(both.tlsKey, "k.pem");
});
