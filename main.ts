import denoJson from "./deno.json" with { type: "json" };
import { startApp, StartError } from "./lib/app.ts";
import { type Command, ConfigError, parseCommand, usage } from "./lib/config.ts";
import { Logger } from "./lib/log.ts";
import { TlsError } from "./lib/net/tls.ts";
import { StorageError } from "./lib/storage/event_log.ts";

/** The version printed by --version and the start line. */
export const VERSION: string = denoJson.version;

/**
 * Runs the CLI: parse flags, start, stop cleanly on SIGINT/SIGTERM, and with TLS reload the
 * certificate on SIGHUP.
 */
export async function main(args: string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(args);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`parley: ${error.message} (see --help)`);
    return 2;
  }
  if (command.kind === "help") {
    console.log(usage(VERSION));
    return 0;
  }
  if (command.kind === "version") {
    console.log(`parley ${VERSION}`);
    return 0;
  }
  const config = command.config;
  const logger = new Logger(config.logLevel, config.logFormat);
  let app;
  try {
    app = await startApp(config, { logger });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      console.error(
        `parley: cannot listen on ${config.host}:${config.port}: the address is already in use`,
      );
    } else if (
      error instanceof StorageError || error instanceof StartError || error instanceof TlsError
    ) {
      console.error(`parley: ${error.message}`);
    } else if (error instanceof Error) {
      console.error(`parley: cannot start: ${error.message}`);
    } else throw error;
    return 1;
  }
  const stopped = Promise.withResolvers<number>();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal means "now": skip the rest of the drain.
      logger.warn("stopping at once", { signal });
      stopped.resolve(1);
      return;
    }
    stopping = true;
    logger.info("shutting down", { signal });
    app.shutdown().then(
      () => stopped.resolve(0),
      (error) => {
        logger.error("shutdown failed", {
          error: error instanceof Error ? error.message : String(error),
        });
        stopped.resolve(1);
      },
    );
  };
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  // Only with TLS: without it there is nothing to reload, and SIGHUP keeps its usual meaning.
  const onHup = () => {
    if (!stopping) void app.reloadTls();
  };
  const tls = config.tlsCert !== null;
  if (tls) Deno.addSignalListener("SIGHUP", onHup);
  // Only now: whoever waits for this line may stop us at once, and that must be a clean stop.
  const store = config.store.kind === "sqlite"
    ? `sqlite:${config.store.path}`
    : config.store.kind === "redis"
    ? `${
      config.store.tls ? "rediss" : "redis"
    }://${config.store.hostname}:${config.store.port}/${config.store.db}`
    : config.store.kind;
  logger.info(`parley ${VERSION} listening on ${app.url}`, { store });
  const code = await stopped.promise;
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  if (tls) Deno.removeSignalListener("SIGHUP", onHup);
  if (code === 0) logger.info("stopped");
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
