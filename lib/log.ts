import { LOG_LEVELS, type LogLevel } from "./config.ts";

/** Structured fields of a log line. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** Writes log lines at or above a level, as text or JSON lines, to stderr. */
export class Logger {
  #min: number;
  #json: boolean;
  #write: (line: string) => void;

  constructor(
    level: LogLevel = "info",
    format: "text" | "json" = "text",
    write: (line: string) => void = (line) => console.error(line),
  ) {
    this.#min = LOG_LEVELS.indexOf(level);
    this.#json = format === "json";
    this.#write = write;
  }

  /** True when lines of `level` are written (to skip building them otherwise). */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#min;
  }

  /** Logs at debug level. */
  debug(message: string, fields?: LogFields): void {
    this.#log("debug", message, fields);
  }

  /** Logs at info level. */
  info(message: string, fields?: LogFields): void {
    this.#log("info", message, fields);
  }

  /** Logs at warn level. */
  warn(message: string, fields?: LogFields): void {
    this.#log("warn", message, fields);
  }

  /** Logs at error level. */
  error(message: string, fields?: LogFields): void {
    this.#log("error", message, fields);
  }

  #log(level: LogLevel, message: string, fields: LogFields = {}): void {
    if (LOG_LEVELS.indexOf(level) < this.#min) return;
    const time = new Date().toISOString();
    if (this.#json) {
      this.#write(JSON.stringify({ time, level, message, ...fields }));
      return;
    }
    let line = `${time} ${level.toUpperCase().padEnd(5)} ${message}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) line += ` ${key}=${JSON.stringify(value)}`;
    }
    this.#write(line);
  }
}
