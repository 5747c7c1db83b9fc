/**
 * An error told in one line, for log lines and for the one line a failed start prints: the first
 * line of its message (of its text when it is not an Error), since runtime and SQLite errors may
 * carry more lines than a log line can.
 */
export function errorLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n", 1)[0]!;
}

/** Why a file could not be read, in a few words: "no such file", or the error's first line. */
export function fileErrorLine(error: unknown): string {
  return error instanceof Deno.errors.NotFound ? "no such file" : errorLine(error);
}
