import { parseArgs } from "node:util";
import { parseRate, type Rate } from "./chat/rate_limiter.ts";

/** Where history lives, from `--store`. */
export type StoreUrl =
  | { kind: "memory" }
  | { kind: "sqlite"; path: string }
  | {
    kind: "redis";
    /** `rediss://`: TLS via `Deno.connectTls`. */
    tls: boolean;
    /** A name or address; an IPv6 address without its brackets. */
    hostname: string;
    port: number;
    db: number;
    /** Set only when the URL has one (Redis 6 ACL users). */
    username?: string;
    /** Set only when the URL has one, percent-decoded. */
    password?: string;
  };

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Everything the flags set; DESIGN.md's "Configuration" table. */
export interface Config {
  host: string;
  port: number;
  store: StoreUrl;
  history: number;
  maxMessage: number;
  maxBody: number;
  maxHeader: number;
  maxTarget: number;
  headerTimeout: number;
  bodyTimeout: number;
  idleTimeout: number;
  /** Seconds a connection's output may make no progress before it is closed. */
  writeTimeout: number;
  /** Unsent bytes per connection above which it is no longer read or answered. */
  maxUnsent: number;
  maxConns: number;
  maxConnsPerIp: number;
  /** Where plain TCP sockets come from: `Deno.listen`, or `node:net` (faster fan-out). */
  sockets: "deno" | "node";
  /** Seconds of low allocation after which the heap is trimmed; 0 = never. */
  trimIdle: number;
  presenceGrace: number;
  sessionRate: Rate;
  sendRate: Rate;
  shutdownTimeout: number;
  logLevel: LogLevel;
  logFormat: "text" | "json";
  trustProxy: boolean;
  /** Seconds a store call may take before it is answered 503. */
  storeTimeout: number;
  /** File holding the moderators' secret; null: nobody is a moderator. */
  adminTokenFile: string | null;
  /** Minutes an author may edit a message; 0 = never. */
  editWindow: number;
  /** Prefix of every Redis key and channel. */
  redisPrefix: string;
  /** Extra CA certificates (PEM file) for rediss://; null: the system's only. */
  redisCaFile: string | null;
  /** PEM certificate chain; with `tlsKey`, Parley speaks HTTPS only. Null: plain HTTP. */
  tlsCert: string | null;
  /** PEM private key of `tlsCert`; set exactly when `tlsCert` is. */
  tlsKey: string | null;
}

interface FlagSpec {
  default: string;
  help: string;
  /** The value's placeholder in --help. */
  arg: string;
}

/** Every flag with its default and help, in --help order. */
export const FLAGS: Record<string, FlagSpec> = {
  host: { default: "0.0.0.0", arg: "H", help: "address to listen on" },
  port: { default: "8080", arg: "P", help: "port to listen on (0 = any free port)" },
  store: {
    default: "sqlite:parley.db",
    arg: "URL",
    help: "memory, sqlite:PATH or redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS)",
  },
  "redis-prefix": {
    default: "parley",
    arg: "NAME",
    help: "prefix of every Redis key and channel, so deployments can share one Redis",
  },
  "redis-ca-file": {
    default: "",
    arg: "FILE",
    help: "PEM file of certificates to trust for rediss:// besides the system's",
  },
  history: { default: "1000", arg: "N", help: "events kept per room" },
  "max-message": { default: "2000", arg: "N", help: "characters in a message" },
  "max-body": { default: "65536", arg: "BYTES", help: "bytes in a request body (413 above)" },
  "max-header": {
    default: "16384",
    arg: "BYTES",
    help: "bytes of request line and headers (431 above)",
  },
  "max-target": { default: "8192", arg: "BYTES", help: "bytes of request-target (414 above)" },
  "header-timeout": { default: "10", arg: "S", help: "seconds to receive a request's headers" },
  "body-timeout": { default: "30", arg: "S", help: "seconds to receive a request's body" },
  "idle-timeout": { default: "75", arg: "S", help: "seconds a keep-alive connection may idle" },
  "write-timeout": {
    default: "30",
    arg: "S",
    help: "seconds a client may read none of its answers before it is cut off",
  },
  "max-unsent": {
    default: "65536",
    arg: "BYTES",
    help: "unsent answer bytes per connection above which it is not read or answered",
  },
  "max-conns": { default: "10000", arg: "N", help: "open connections (503 above)" },
  "max-conns-per-ip": {
    default: "0",
    arg: "N",
    help: "connections per client address; 0 = no limit",
  },
  sockets: {
    default: "deno",
    arg: "KIND",
    help: "deno (Deno.listen) or node (node:net: answers many polls at once sooner, but never " +
      "accepts again once it runs out of file descriptors, so it holds at most --max-conns + 512 " +
      "sockets, and the server warns at start when --max-conns + 1024 is above ulimit -n)",
  },
  "trim-idle": {
    default: "1",
    arg: "S",
    help: "seconds of quiet after a burst before unused memory goes back to the system (a full " +
      "garbage collection, about 20 ms per 1,000 waiting polls; none with over 128 MiB live); " +
      "0 = never. Needs --v8-flags=--expose-gc, which deno task start and the compiled binary pass",
  },
  "presence-grace": {
    default: "60",
    arg: "S",
    help: "seconds a session stays without a poll or request before it leaves and expires",
  },
  "session-rate": {
    default: "30/min",
    arg: "RATE",
    help: "new sessions per client address; 0 = off",
  },
  "send-rate": {
    default: "10/s",
    arg: "RATE",
    help: "sends per session (burst of the same size); 0 = off",
  },
  "shutdown-timeout": { default: "10", arg: "S", help: "seconds to drain on SIGINT/SIGTERM" },
  "store-timeout": {
    default: "5",
    arg: "S",
    help: "seconds a store call may take before it is answered 503 and /healthz turns 503",
  },
  "admin-token-file": {
    default: "",
    arg: "FILE",
    help: "file holding the moderators' secret; unset: nobody is a moderator",
  },
  "edit-window": {
    default: "15",
    arg: "MIN",
    help: "minutes an author may edit a message; 0 = never",
  },
  "tls-cert": {
    default: "",
    arg: "FILE",
    help: "PEM certificate chain; with --tls-key, serve HTTPS only (SIGHUP reloads both)",
  },
  "tls-key": { default: "", arg: "FILE", help: "PEM private key of --tls-cert" },
  "log-level": { default: "info", arg: "LEVEL", help: "debug, info, warn or error" },
  "log-format": { default: "text", arg: "FORMAT", help: "text or json" },
};

/** A flag value the user must fix: main prints the message and exits with 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** What the command line asks for. */
export type Command = { kind: "help" } | { kind: "version" } | { kind: "serve"; config: Config };

/** Parses the command line; throws ConfigError with one readable line on bad input. */
export function parseCommand(args: string[]): Command {
  const options: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
    version: { type: "boolean" },
    "trust-proxy": { type: "boolean" },
  };
  for (const name of Object.keys(FLAGS)) options[name] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  let tokens;
  try {
    ({ values, tokens } = parseArgs({
      args: joinDashValues(args, options),
      options,
      strict: true,
      allowPositionals: false,
      tokens: true,
    }));
  } catch (error) {
    throw new ConfigError((error as Error).message.split("\n")[0]!);
  }
  // A flag given twice is most likely a mistake in a script; taking the last silently hides it.
  const seen = new Set<string>();
  for (const token of tokens ?? []) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name)) throw new ConfigError(`--${token.name} is given more than once`);
    seen.add(token.name);
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const get = (name: string) => (values[name] as string | undefined) ?? FLAGS[name]!.default;
  const config: Config = {
    host: host(get("host")),
    port: integer("port", get("port"), 0, 65535),
    store: parseStoreUrl(get("store")),
    history: integer("history", get("history"), 1, 1_000_000),
    maxMessage: integer("max-message", get("max-message"), 1, 1_000_000),
    maxBody: integer("max-body", get("max-body"), 64, 64 * 1024 * 1024),
    maxHeader: integer("max-header", get("max-header"), 256, 1024 * 1024),
    maxTarget: integer("max-target", get("max-target"), 16, 1024 * 1024),
    headerTimeout: seconds("header-timeout", get("header-timeout")),
    bodyTimeout: seconds("body-timeout", get("body-timeout")),
    idleTimeout: seconds("idle-timeout", get("idle-timeout")),
    writeTimeout: seconds("write-timeout", get("write-timeout")),
    maxUnsent: integer("max-unsent", get("max-unsent"), 1024, 64 * 1024 * 1024),
    maxConns: integer("max-conns", get("max-conns"), 1, 1_000_000),
    maxConnsPerIp: integer("max-conns-per-ip", get("max-conns-per-ip"), 0, 1_000_000),
    presenceGrace: seconds("presence-grace", get("presence-grace")),
    sessionRate: rate("session-rate", get("session-rate")),
    sendRate: rate("send-rate", get("send-rate")),
    shutdownTimeout: seconds("shutdown-timeout", get("shutdown-timeout")),
    logLevel: oneOf("log-level", get("log-level"), LOG_LEVELS),
    logFormat: oneOf("log-format", get("log-format"), ["text", "json"] as const),
    sockets: oneOf("sockets", get("sockets"), ["deno", "node"] as const),
    trimIdle: seconds("trim-idle", get("trim-idle"), { zero: true }),
    trustProxy: values["trust-proxy"] === true,
    storeTimeout: seconds("store-timeout", get("store-timeout")),
    adminTokenFile: get("admin-token-file") === "" ? null : get("admin-token-file"),
    editWindow: integer("edit-window", get("edit-window"), 0, 525_600),
    redisPrefix: redisPrefix(get("redis-prefix")),
    redisCaFile: get("redis-ca-file") === "" ? null : get("redis-ca-file"),
    tlsCert: get("tls-cert") === "" ? null : get("tls-cert"),
    tlsKey: get("tls-key") === "" ? null : get("tls-key"),
  };
  if ((config.tlsCert === null) !== (config.tlsKey === null)) {
    // One alone would silently serve plain HTTP to someone who asked for HTTPS.
    const given = config.tlsCert === null ? "--tls-key" : "--tls-cert";
    const missing = config.tlsCert === null ? "--tls-cert" : "--tls-key";
    throw new ConfigError(`${given} needs ${missing} too: HTTPS takes both files, or neither`);
  }
  if (config.maxTarget > config.maxHeader && values["max-target"] === undefined) {
    // Only the default is larger: a lower --max-header alone lowers the target limit with it.
    config.maxTarget = config.maxHeader;
  } else if (config.maxTarget > config.maxHeader) {
    throw new ConfigError(
      `--max-target (${config.maxTarget}) cannot exceed --max-header (${config.maxHeader})`,
    );
  }
  return { kind: "serve", config };
}

/** The --help text: every flag with its default. */
export function usage(version: string): string {
  const rows = Object.entries(FLAGS).map(([name, spec]) => [
    `  --${name} ${spec.arg}`,
    spec.default === ""
      ? `${spec.help} (default: none)`
      : `${spec.help} (default: ${spec.default})`,
  ]);
  rows.push(["  --trust-proxy", "take the client address from X-Forwarded-For (default: off)"]);
  rows.push(["  --help", "show this help"], ["  --version", "show the version"]);
  const width = Math.max(...rows.map(([flag]) => flag!.length)) + 2;
  return [
    `parley ${version}: a long-poll chat server`,
    "",
    "Usage: parley [options]",
    "",
    "Options:",
    ...rows.map(([flag, help]) => flag!.padEnd(width) + help),
    "",
    "Rates are N/s, N/min or N/h: a token bucket of N tokens refilled over that period.",
  ].join("\n");
}

/** Parses `--store`. */
export function parseStoreUrl(text: string): StoreUrl {
  if (text === "memory") return { kind: "memory" };
  if (text.startsWith("sqlite:")) {
    const path = text.slice("sqlite:".length);
    if (path === "") throw new ConfigError("--store sqlite: needs a path, e.g. sqlite:parley.db");
    return { kind: "sqlite", path };
  }
  if (text.startsWith("redis://") || text.startsWith("rediss://")) return parseRedisUrl(text);
  throw new ConfigError(`--store ${text} is not memory, sqlite:PATH or redis://HOST:PORT[/DB]`);
}

const REDIS_FORM = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (or rediss:// for TLS)";

/** `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`; errors never repeat the password. */
function parseRedisUrl(text: string): StoreUrl {
  const tls = text.startsWith("rediss://");
  const scheme = tls ? "rediss://" : "redis://";
  let rest = text.slice(scheme.length);
  // The last "@" ends the credentials: a host never holds one, a pasted password might.
  const at = rest.lastIndexOf("@");
  const userinfo = at < 0 ? undefined : rest.slice(0, at);
  rest = rest.slice(at + 1);
  const shown = userinfo === undefined
    ? text
    : `${scheme}${userinfo.slice(0, Math.max(0, userinfo.indexOf(":")))}:***@${rest}`;
  const fail = (why: string) => new ConfigError(`--store ${shown}: ${why}; expected ${REDIS_FORM}`);
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash + 1);
  let hostname: string;
  let portText: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    hostname = close < 0 ? "" : authority.slice(1, close);
    if (close < 0 || !/^[0-9a-f]*:[0-9a-f:.]*$/i.test(hostname)) {
      throw fail("an address in brackets must be an IPv6 address");
    }
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) throw fail(`"${after}" after the address`);
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = authority.indexOf(":");
    if (colon >= 0 && authority.indexOf(":", colon + 1) >= 0) {
      throw fail("an IPv6 address goes in brackets, as in redis://[::1]:6379");
    }
    hostname = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
    if (hostname === "") throw fail("the host is missing");
    if (!/^[a-z0-9._-]+$/i.test(hostname)) {
      throw fail(`"${hostname}" is not a host name or address`);
    }
  }
  const port = portText === undefined ? 6379 : /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) throw fail(`the port must be a number from 1 to 65535`);
  const db = path === "" ? 0 : /^\d{1,7}$/.test(path) ? Number(path) : -1;
  if (db < 0 || db > 1_000_000) {
    throw fail("the database must be a number from 0 to 1000000, as in redis://HOST:6379/0");
  }
  const url: StoreUrl = { kind: "redis", tls, hostname, port, db };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    if (colon < 0) throw fail("put the password after a colon, as in redis://:PASSWORD@HOST");
    const username = percentDecode(userinfo.slice(0, colon), "user name", fail);
    const password = percentDecode(userinfo.slice(colon + 1), "password", fail);
    if (password === "") throw fail("the password is empty");
    if (username !== "") url.username = username;
    url.password = password;
  }
  return url;
}

function percentDecode(text: string, what: string, fail: (why: string) => ConfigError): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw fail(`the ${what} has a malformed %-escape (write % as %25)`);
  }
}

function integer(name: string, text: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw new ConfigError(`--${name} must be a whole number from ${min} to ${max}, not "${text}"`);
  }
  return n;
}

function seconds(name: string, text: string, { zero = false } = {}): number {
  const n = /^\d{1,7}(\.\d{1,3})?$/.test(text) ? Number(text) : NaN;
  if (!(n > 0 || (zero && n === 0))) {
    const what = zero ? "a number of seconds (0 or more)" : "a positive number of seconds";
    throw new ConfigError(`--${name} must be ${what}, not "${text}"`);
  }
  return n;
}

function redisPrefix(text: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(text)) {
    throw new ConfigError(
      `--redis-prefix must be 1 to 64 letters, digits, '_', '.' or '-', not "${text}"`,
    );
  }
  return text;
}

function rate(name: string, text: string): Rate {
  try {
    return parseRate(text);
  } catch (error) {
    throw new ConfigError(`--${name}: ${(error as Error).message}`);
  }
}

function oneOf<T extends string>(name: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new ConfigError(`--${name} must be one of ${allowed.join(", ")}, not "${text}"`);
  }
  return text as T;
}

/**
 * `--port -1` would read as the flag `-1`: a value flag followed by something that starts with a
 * dash takes it as its value (`--port=-1`), so the value's own check gives the message.
 */
function joinDashValues(
  args: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith("--") ? arg.slice(2) : "";
    if (options[name]?.type === "string" && next !== undefined && /^-[^-]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** An IPv4 address, an IPv6 address or a host name: checked here, so a typo exits 2, not 1. */
function host(text: string): string {
  const bad = () => new ConfigError(`--host "${text}" is not an IP address or host name`);
  if (/^[\d.]+$/.test(text)) {
    const parts = text.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
      throw bad();
    }
    return text;
  }
  if (text.includes(":")) {
    const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
    try {
      new URL(`http://[${bare}]/`);
    } catch {
      throw bad();
    }
    return bare;
  }
  const label = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
  if (text.length === 0 || text.length > 253 || !text.split(".").every((l) => label.test(l))) {
    throw bad();
  }
  return text;
}
