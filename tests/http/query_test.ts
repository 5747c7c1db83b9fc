import assert from "node:assert/strict";
import { RawQuery } from "../../lib/http/query.ts";

const CASES = [
  "",
  "cursor=12&wait=25",
  "wait=0.5&cursor=7&wait=9",
  "a=1&&b=2&",
  "flag&x=",
  "name=J%C3%B6rg+M%C3%BCller",
  "q=%zz%41%",
  "bad=%E2%82&good=%E2%82%AC",
  "sp%61ce=yes",
  "plus=a+b%2Bc",
  "emoji=%F0%9F%98%80&raw=😀",
  "=nokey&k=v",
];

Deno.test("raw query parameters decode as URLSearchParams does", () => {
  for (const raw of CASES) {
    const ours = new RawQuery(raw);
    const theirs = new URLSearchParams(raw);
    for (
      const name of [
        "cursor",
        "wait",
        "a",
        "b",
        "flag",
        "x",
        "name",
        "q",
        "bad",
        "good",
        "space",
        "plus",
        "emoji",
        "raw",
        "",
        "k",
        "missing",
      ]
    ) {
      assert.equal(ours.get(name), theirs.get(name), `${JSON.stringify(raw)}: ${name}`);
    }
    assert.deepEqual([...ours], [...theirs], JSON.stringify(raw));
  }
});
