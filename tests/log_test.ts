import assert from "node:assert/strict";
import { Logger } from "../lib/log.ts";

Deno.test("logger writes lines at or above its level only", () => {
  const lines: string[] = [];
  const logger = new Logger("warn", "text", (line) => lines.push(line));
  logger.info("hidden");
  logger.warn("shown", { port: 8080 });
  logger.error("also shown");
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, / WARN {2}shown port=8080$/);
  assert.equal(logger.enabled("debug"), false);
  assert.equal(logger.enabled("error"), true);
});

Deno.test("logger writes one JSON object per line in json format", () => {
  const lines: string[] = [];
  new Logger("debug", "json", (line) => lines.push(line)).debug("request", { status: 200 });
  const record = JSON.parse(lines[0]!);
  assert.equal(record.level, "debug");
  assert.equal(record.message, "request");
  assert.equal(record.status, 200);
  assert.ok(!Number.isNaN(Date.parse(record.time)));
});
