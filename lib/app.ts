import { ASSETS } from "../static/assets.ts";
import { createApi } from "./chat/api.ts";
import { ChatStore } from "./chat/chat_store.ts";
import type { Config } from "./config.ts";
import { HttpServer } from "./http/server.ts";
import { StaticFiles } from "./http/static_files.ts";
import type { HttpRequest, HttpResponse } from "./http/types.ts";
import { Logger } from "./log.ts";
import { readTlsCertificate, type TlsCertificate } from "./net/tls.ts";
import type { EventLog } from "./storage/event_log.ts";
import { LocalState } from "./storage/local_state.ts";
import { RedisState } from "./storage/redis_state.ts";
import type { SharedState } from "./storage/shared_state.ts";
import { SqliteEventLog } from "./storage/sqlite_event_log.ts";
import { VolatileEventLog } from "./storage/volatile_event_log.ts";
import { errorLine, fileErrorLine } from "./error_line.ts";
import { exposedCollection, HeapTrimmer } from "./heap_trim.ts";
import { FD_HEADROOM, openFileLimit, tooCloseToLimit } from "./net/open_files.ts";

/** Hooks for tests: an injected clock and manual sweeps instead of timers. */
export interface AppOptions {
  now?: () => number;
  /** Milliseconds between timeout and presence sweeps; 0 = none (call `sweep()`). */
  sweepInterval?: number;
  logger?: Logger;
  /** Keep the shared state in this log instead of opening `config.store`. */
  eventLog?: EventLog;
  /** Use this shared state instead of opening `config.store`. */
  state?: SharedState;
  /** The open-file limit `--sockets node` is checked against (default: the process's own). */
  openFileLimit?: number | null;
}

/** A running Parley: server, store and the timers that keep them tidy. */
export interface App {
  readonly server: HttpServer;
  readonly store: ChatStore;
  readonly addr: Deno.NetAddr;
  /** `http://host:port` (`https://` with TLS) to reach it (loopback for a wildcard host). */
  readonly url: string;
  /**
   * Reads `--tls-cert` and `--tls-key` again and serves them to new connections (SIGHUP); open
   * connections keep theirs. Logs one info line when it worked, else one warning with the reason,
   * keeping the current pair. Resolves with whether it worked; false without TLS.
   */
  reloadTls(): Promise<boolean>;
  /** Runs the timeout, presence, deadline and health sweeps once (tests with an injected clock). */
  sweep(): Promise<void>;
  /**
   * Drains: polls answer with `Connection: close`, then connections close, then the store; all
   * within `timeoutMs`, whatever the store does (what it did not confirm by then is logged).
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Sweeps between checks of the backend's health (a deleted database file). */
const HEALTH_EVERY = 5;
/** What a backend's own close deadline may overrun before shutdown stops waiting for it. */
const CLOSE_GRACE_MS = 250;

/** Starts trimming the heap after bursts (`--trim-idle`), when V8's `gc()` is there to do it. */
function startTrimmer(config: Config, logger: Logger): HeapTrimmer | null {
  if (config.trimIdle === 0) return null;
  const collect = exposedCollection();
  if (!collect) {
    logger.debug("heap trimming off: start with --v8-flags=--expose-gc to have it");
    return null;
  }
  const mib = (bytes: number) => Math.round(bytes / 1024 / 102.4) / 10;
  const trimmer = new HeapTrimmer({
    quietMs: config.trimIdle * 1000,
    collect,
    onTrim: ({ before, after, ms }) =>
      logger.debug("heap trimmed", {
        beforeMiB: mib(before),
        afterMiB: mib(after),
        ms: Math.round(ms),
      }),
  });
  trimmer.start();
  logger.debug("heap trimming on", { quietSeconds: config.trimIdle });
  return trimmer;
}

/** Opens the store named by `--store`; rejects with StorageError with a readable message. */
export async function openState(
  config: Config,
  options: { now?: () => number; logger?: Logger; eventLog?: EventLog } = {},
): Promise<SharedState> {
  const history = config.history;
  let log = options.eventLog;
  if (!log) {
    switch (config.store.kind) {
      case "memory":
        log = new VolatileEventLog();
        break;
      case "sqlite":
        log = await SqliteEventLog.open(config.store.path, { history });
        break;
      case "redis": {
        const url = config.store;
        return await RedisState.open({
          prefix: config.redisPrefix,
          history,
          redis: {
            hostname: url.hostname,
            port: url.port,
            tls: url.tls,
            db: url.db,
            ...(url.username !== undefined ? { username: url.username } : {}),
            ...(url.password !== undefined ? { password: url.password } : {}),
            ...(config.redisCaFile !== null ? { caFile: config.redisCaFile } : {}),
          },
        });
      }
    }
  }
  try {
    return await LocalState.open(log, {
      history,
      ...(options.now ? { now: options.now } : {}),
      warn: (message, fields) => options.logger?.warn(message, fields),
    });
  } catch (error) {
    await log.close();
    throw error;
  }
}

/** A reason the server cannot start that the operator must fix; main prints it as it is. */
export class StartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartError";
  }
}

/** Reads the moderators' secret; a missing, unreadable or too short one is a StartError. */
async function readAdminSecret(path: string | null): Promise<string | null> {
  if (path === null) return null;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new StartError(`Cannot read --admin-token-file ${path}: ${fileErrorLine(error)}`);
  }
  const secret = text.trim();
  if (secret.length < 8) {
    throw new StartError(
      `--admin-token-file ${path} must hold a secret of at least 8 characters`,
    );
  }
  return secret;
}

/** Starts Parley with `config`; throws if the port is taken or the store cannot open. */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? new Logger(config.logLevel, config.logFormat);
  const now = options.now ?? Date.now;
  const adminSecret = await readAdminSecret(config.adminTokenFile);
  // Before the store opens: a bad file is the operator's to fix, and cheap to find first.
  const tls = config.tlsCert !== null && config.tlsKey !== null
    ? await readTlsCertificate(config.tlsCert, config.tlsKey)
    : null;
  const state = options.state ??
    await openState(config, {
      now,
      logger,
      ...(options.eventLog ? { eventLog: options.eventLog } : {}),
    });
  let server: HttpServer | null = null;
  try {
    const store = new ChatStore(state, {
      maxMessage: config.maxMessage,
      presenceGrace: config.presenceGrace,
      sessionRate: config.sessionRate,
      sendRate: config.sendRate,
      editWindow: config.editWindow,
      adminSecret,
      storeTimeout: config.storeTimeout,
      now,
      logger,
    });
    const files = await StaticFiles.create(ASSETS);
    const api = createApi({
      store,
      static: files,
      draining: () => server?.draining ?? false,
      metrics: async () => {
        const gauges = await store.gauges();
        return {
          connections: server?.connections ?? 0,
          waitingPolls: gauges.waitingPolls,
          sessions: gauges.sessions,
          rooms: gauges.rooms,
          events: store.counters.events,
          delivered: store.counters.delivered,
          responses: server?.stats.responses ?? [],
          refusedConnections: server?.stats.refused ?? 0,
          writeTimeouts: server?.stats.writeTimeouts ?? 0,
          tlsHandshakeFailures: server?.stats.tlsHandshakeFailures ?? 0,
          storeErrors: store.health.errors,
          storeHealthy: store.health.ok ? 1 : 0,
        };
      },
    });
    const sweepInterval = options.sweepInterval ?? 1000;
    server = new HttpServer((req) => api.handle(req), {
      hostname: config.host,
      port: config.port,
      limits: { maxHeader: config.maxHeader, maxTarget: config.maxTarget, maxBody: config.maxBody },
      timeouts: {
        header: config.headerTimeout,
        body: config.bodyTimeout,
        idle: config.idleTimeout,
        write: config.writeTimeout,
      },
      maxUnsent: config.maxUnsent,
      maxConns: config.maxConns,
      maxConnsPerIp: config.maxConnsPerIp,
      sockets: config.sockets,
      trustProxy: config.trustProxy,
      ...(tls ? { tls } : {}),
      sweepInterval,
      now,
      ...(logger.enabled("debug")
        ? {
          onResponse: (req: HttpRequest, res: HttpResponse, ms: number) =>
            logger.debug("request", {
              method: req.method,
              path: req.path,
              status: res.status,
              ms,
              client: req.remoteAddr,
            }),
        }
        : {}),
      onAcceptError: (error) =>
        logger.warn("accept failed; retrying", { error: `${error.name}: ${error.message}` }),
      // Debug only: anyone may fail a handshake (scanners, plain HTTP); the counter is in /metrics.
      ...(logger.enabled("debug")
        ? {
          onHandshakeError: (error: Error, remoteAddr: string) =>
            logger.debug("TLS handshake failed", {
              client: remoteAddr,
              error: `${error.name}: ${error.message}`,
            }),
        }
        : {}),
      onError: (error, req) =>
        logger.error("handler failed", {
          request: req ? `${req.method} ${req.path}` : undefined,
          error: error instanceof Error ? error.stack ?? error.message : String(error),
        }),
    });
    const addr = await server.listen();
    const running = server;
    let sweeps = 0;
    const sweep = async () => {
      await store.sweep();
      if (sweeps++ % HEALTH_EVERY === 0) await store.checkHealth();
    };
    const sweeper = sweepInterval > 0 ? setInterval(() => void sweep(), sweepInterval) : undefined;
    const trimmer = startTrimmer(config, logger);
    // Read only where it matters: node:net never accepts again once it runs out of descriptors.
    const fileLimit = config.sockets !== "node"
      ? null
      : options.openFileLimit !== undefined
      ? options.openFileLimit
      : openFileLimit();
    if (tooCloseToLimit(config.maxConns, fileLimit)) {
      logger.warn(
        "--sockets node: --max-conns leaves too little room below the open-file limit; node:net " +
          "stops accepting for good once it runs out. Lower --max-conns or raise ulimit -n",
        {
          maxConns: config.maxConns,
          openFileLimit: fileLimit!,
          needed: config.maxConns + FD_HEADROOM,
        },
      );
    }
    const host = addr.hostname === "0.0.0.0"
      ? "127.0.0.1"
      : addr.hostname === "::"
      ? "::1"
      : addr.hostname;
    const url = `${tls ? "https" : "http"}://${
      host.includes(":") ? `[${host}]` : host
    }:${addr.port}`;
    let stopping: Promise<void> | null = null;
    const reload = async (): Promise<boolean> => {
      if (config.tlsCert === null || config.tlsKey === null) return false;
      let next: TlsCertificate;
      try {
        next = await readTlsCertificate(config.tlsCert, config.tlsKey);
        running.reloadTls(next);
      } catch (error) {
        logger.warn("TLS reload failed; keeping the current certificate", {
          reason: errorLine(error),
        });
        return false;
      }
      logger.info("TLS certificate reloaded for new connections", {
        cert: next.certFile,
        key: next.keyFile,
      });
      return true;
    };
    // One reload at a time, and a signal during one runs one more after it: never two binds at
    // once, and never more than one waiting however many signals come.
    let reloading: Promise<boolean> | null = null;
    let again: Promise<boolean> | null = null;
    const reloadTls = (): Promise<boolean> => {
      if (!reloading) {
        reloading = reload().finally(() => reloading = null);
        return reloading;
      }
      again ??= reloading.then(() => {
        again = null;
        return reloadTls();
      });
      return again;
    };
    return {
      server: running,
      store,
      addr,
      url,
      reloadTls,
      async sweep() {
        running.sweep();
        await store.sweep();
        await store.checkHealth();
      },
      shutdown(timeoutMs = config.shutdownTimeout * 1000) {
        stopping ??= (async () => {
          const deadline = Date.now() + timeoutMs;
          store.shutdown();
          // The sweeps go on while draining: requests stuck on a stalled store get their 503.
          await running.shutdown(timeoutMs);
          clearInterval(sweeper);
          trimmer?.stop();
          const left = Math.max(0, deadline - Date.now());
          // The backend is asked to keep the deadline, and not trusted to: a stalled one is left.
          let lateTimer: ReturnType<typeof setTimeout> | undefined;
          const late = new Promise<"late">((resolve) => {
            lateTimer = setTimeout(() => resolve("late"), left + CLOSE_GRACE_MS);
          });
          const closed = await Promise.race([state.close(left).catch(() => 0), late]);
          clearTimeout(lateTimer);
          if (closed === "late") {
            logger.error(
              "store did not close before the shutdown deadline; its pending writes are lost",
              {},
            );
          } else if (closed > 0) {
            logger.error("store did not confirm writes before the shutdown deadline", {
              writes: closed,
            });
          }
        })();
        return stopping;
      },
    };
  } catch (error) {
    await server?.close();
    await state.close();
    throw error;
  }
}
