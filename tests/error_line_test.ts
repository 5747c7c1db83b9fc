import assert from "node:assert/strict";
import { errorLine, fileErrorLine } from "../lib/error_line.ts";

Deno.test("an error is told by the first line of its message, anything else by its text's", () => {
  assert.equal(errorLine(new Error("disk is full\n    at somewhere")), "disk is full");
  assert.equal(errorLine("worker died\nstack"), "worker died");
  assert.equal(errorLine(42), "42");
});

Deno.test("a file that is not there is 'no such file'; other read errors keep their first line", () => {
  assert.equal(
    fileErrorLine(new Deno.errors.NotFound("No such file (os error 2)\nmore")),
    "no such file",
  );
  assert.equal(
    fileErrorLine(new Deno.errors.PermissionDenied("Permission denied\nmore")),
    "Permission denied",
  );
});
