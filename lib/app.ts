import { ASSETS } from "../static/assets.ts";
import { createApi } from "./chat/api.ts";
import { ChatStore } from "./chat/chat_store.ts";
import type { Config } from "./config.ts";
import { HttpServer } from "./http/server.ts";
import { StaticFiles } from "./http/static_files.ts";
import type { HttpRequest, HttpResponse } from "./http/types.ts";
import { Logger } from "./log.ts";
import type { EventLog } from "./storage/event_log.ts";
import { MemoryEventLog } from "./storage/memory_event_log.ts";
import { SqliteEventLog } from "./storage/sqlite_event_log.ts";

/** Hooks for tests: an injected clock and manual sweeps instead of timers. */
export interface AppOptions {
  now?: () => number;
  /** Milliseconds between timeout and presence sweeps; 0 = none (call `sweep()`). */
  sweepInterval?: number;
  logger?: Logger;
  /** Use this log instead of opening `config.store`. */
  eventLog?: EventLog;
}

/** A running Parley: server, store and the timers that keep them tidy. */
export interface App {
  readonly server: HttpServer;
  readonly store: ChatStore;
  readonly addr: Deno.NetAddr;
  /** `http://host:port` to reach it (loopback for a wildcard host). */
  readonly url: string;
  /** Runs the timeout and presence sweeps once (tests with an injected clock). */
  sweep(): Promise<void>;
  /** Drains: polls answer with `Connection: close`, then connections close, then the store. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Opens the store named by `--store`; rejects with StorageError with a readable message. */
export async function openEventLog(config: Config): Promise<EventLog> {
  const options = { history: config.history };
  switch (config.store.kind) {
    case "memory":
      return new MemoryEventLog(options);
    case "sqlite":
      return await SqliteEventLog.open(config.store.path, options);
    case "redis":
      throw new Error("--store redis:// is not available in this version yet");
  }
}

/** Starts Parley with `config`; throws if the port is taken or the store cannot open. */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? new Logger(config.logLevel, config.logFormat);
  const now = options.now ?? Date.now;
  const log = options.eventLog ?? await openEventLog(config);
  let server: HttpServer | null = null;
  try {
    const store = await ChatStore.open(log, {
      history: config.history,
      maxMessage: config.maxMessage,
      presenceGrace: config.presenceGrace,
      sessionRate: config.sessionRate,
      sendRate: config.sendRate,
      now,
    });
    const files = await StaticFiles.create(ASSETS);
    const api = createApi({
      store,
      static: files,
      draining: () => server?.draining ?? false,
      metrics: () => {
        const gauges = store.gauges;
        return {
          connections: server?.connections ?? 0,
          waitingPolls: gauges.waitingPolls,
          sessions: gauges.sessions,
          rooms: gauges.rooms,
          events: store.counters.events,
          delivered: store.counters.delivered,
          responses: server?.stats.responses ?? [],
          refusedConnections: server?.stats.refused ?? 0,
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
      },
      maxConns: config.maxConns,
      maxConnsPerIp: config.maxConnsPerIp,
      trustProxy: config.trustProxy,
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
      onError: (error, req) =>
        logger.error("handler failed", {
          request: req ? `${req.method} ${req.path}` : undefined,
          error: error instanceof Error ? error.stack ?? error.message : String(error),
        }),
    });
    const addr = server.listen();
    const running = server;
    const presence = sweepInterval > 0
      ? setInterval(() => void store.sweep(), sweepInterval)
      : undefined;
    const host = addr.hostname === "0.0.0.0"
      ? "127.0.0.1"
      : addr.hostname === "::"
      ? "::1"
      : addr.hostname;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
    let stopping: Promise<void> | null = null;
    return {
      server: running,
      store,
      addr,
      url,
      async sweep() {
        running.sweep();
        await store.sweep();
      },
      shutdown(timeoutMs = config.shutdownTimeout * 1000) {
        stopping ??= (async () => {
          clearInterval(presence);
          store.shutdown();
          await running.shutdown(timeoutMs);
          await log.close();
        })();
        return stopping;
      },
    };
  } catch (error) {
    await server?.close();
    await log.close();
    throw error;
  }
}
