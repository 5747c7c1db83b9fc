/** The open-file limit --sockets node is checked against (lib/net/open_files.ts). */
import assert from "node:assert/strict";
import {
  FD_HEADROOM,
  openFileLimit,
  parseOpenFileLimit,
  tooCloseToLimit,
} from "../../lib/net/open_files.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("parseOpenFileLimit reads the soft limit of open files, unlimited as Infinity", () => {
  assert.equal(parseOpenFileLimit(LIMITS), 1024);
  assert.equal(
    parseOpenFileLimit(
      LIMITS.replace("1024                 524288", "unlimited            unlimited"),
    ),
    Infinity,
  );
  assert.equal(parseOpenFileLimit("Max cpu time  unlimited  unlimited  seconds\n"), null);
  assert.equal(parseOpenFileLimit("Max open files  lots  lots  files\n"), null);
});

Deno.test("openFileLimit is this process's limit where /proc tells it", () => {
  let text: string | null = null;
  try {
    text = Deno.readTextFileSync("/proc/self/limits");
  } catch {
    // No /proc (not Linux): the limit is unknown.
  }
  assert.equal(openFileLimit(), text === null ? null : parseOpenFileLimit(text));
});

Deno.test("tooCloseToLimit wants the headroom of refused and other descriptors above --max-conns", () => {
  assert.equal(tooCloseToLimit(10_000, 20_000), false);
  assert.equal(tooCloseToLimit(10_000, 10_000 + FD_HEADROOM), false);
  assert.equal(tooCloseToLimit(10_000, 10_000 + FD_HEADROOM - 1), true);
  assert.equal(tooCloseToLimit(10_000, Infinity), false);
  assert.equal(tooCloseToLimit(10_000, null), false);
});
