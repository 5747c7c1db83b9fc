import assert from "node:assert/strict";
import { acceptsGzip, PAGE_CSP, StaticFiles } from "../../lib/http/static_files.ts";
import type { HttpRequest } from "../../lib/http/types.ts";
import { ASSETS } from "../../static/assets.ts";

const ACCEPT_ENCODINGS: [string | undefined, boolean][] = [
  [undefined, false],
  ["", false],
  ["gzip", true],
  ["GZip", true],
  ["x-gzip", true],
  ["gzip, deflate, br, zstd", true],
  ["deflate, br", false],
  ["*", true],
  ["identity", false],
  // An explicit coding's q-value wins over "*" (RFC 9110 §12.5.3).
  ["gzip;q=0, *", false],
  ["*, gzip;q=0", false],
  ["gzip;q=0.000", false],
  ["*;q=0", false],
  ["*;q=0, gzip", true],
  ["br;q=0, *", true],
  ["gzip;q=0.5", true],
  ["gzip ; q=0.5", true],
  ["gzip;Q=0.5", true],
  ["gzip;q=1", true],
  ["gzip;q=1.000", true],
  ["gzip;q=0.001", true],
  // Identity wanted more than gzip.
  ["gzip;q=0.5, identity", false],
  ["gzip;q=0.5, *;q=0.8", false],
  ["gzip;q=0.8, identity;q=0.5", true],
  // q-values outside the grammar make their element not count.
  ["gzip;q=1.001", false],
  ["gzip;q=2", false],
  ["gzip;q=-1", false],
  ["gzip;q=0.0001", false],
  ["gzip;q=.5", false],
  ["gzip;q=0.5x", false],
  ["gzip;q=1e0", false],
  ["gzip;q= 0.5", false],
  ["gzip;q =0.5", false],
  ["gzip;level=1", false],
  ["gzip;q=0.5;level=1", false],
  ["gzip;q=abc, *", true],
  // U+00A0 is not whitespace here: "gzip\xa0" is not gzip.
  ["gzip\xa0", false],
  ["\xa0gzip", false],
  ["gzip;q=0,\xa0*", false],
];

for (const [header, expected] of ACCEPT_ENCODINGS) {
  const shown = JSON.stringify(header)?.replaceAll("\xa0", "\\xa0");
  Deno.test(`acceptsGzip reads Accept-Encoding ${shown} as ${expected}`, () => {
    assert.equal(acceptsGzip(header), expected);
  });
}

/** A GET of `path` with `headers` (lower-case names). */
function get(path: string, headers: Record<string, string> = {}): HttpRequest {
  return {
    method: "GET",
    target: path,
    path,
    query: new URLSearchParams(),
    version: "HTTP/1.1",
    headers: new Map(Object.entries(headers)),
    body: new Uint8Array(0),
    remoteAddr: "127.0.0.1",
    signal: new AbortController().signal,
    abortable: new AbortController().signal,
  };
}

Deno.test("static files answer gzip;q=0 with * with the identity representation", async () => {
  const files = await StaticFiles.create([
    { path: "/app.js", contentType: "text/javascript", text: "console.log(1);".repeat(50) },
  ]);
  const plain = files.serve(get("/app.js", { "accept-encoding": "gzip;q=0, *" }));
  assert.equal(plain.headers?.["Content-Encoding"], undefined);
  assert.equal((plain.body as Uint8Array).byteLength, 750);
  const gzip = files.serve(get("/app.js", { "accept-encoding": "gzip" }));
  assert.equal(gzip.headers?.["Content-Encoding"], "gzip");
  assert.notEqual(gzip.headers?.ETag, plain.headers?.ETag);
});

Deno.test("static files match If-None-Match trimmed of OWS only", async () => {
  const files = await StaticFiles.create([
    { path: "/app.js", contentType: "text/javascript", text: "x" },
  ]);
  const etag = files.serve(get("/app.js", {})).headers!.ETag!;
  assert.equal(files.serve(get("/app.js", { "if-none-match": ` \t${etag} ,"x"` })).status, 304);
  assert.equal(files.serve(get("/app.js", { "if-none-match": `W/${etag}` })).status, 304);
  assert.equal(files.serve(get("/app.js", { "if-none-match": "\t* " })).status, 304);
  assert.equal(files.serve(get("/app.js", { "if-none-match": `\xa0${etag}` })).status, 200);
  assert.equal(files.serve(get("/app.js", { "if-none-match": "*\xa0" })).status, 200);
});

/** The directives of a policy by name, each with its sources. */
function directives(policy: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const part of policy.split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) map.set(name.toLowerCase(), sources);
  }
  return map;
}

Deno.test("the page is served with a Content-Security-Policy that allows nothing inline or from elsewhere", async () => {
  const files = await StaticFiles.create(ASSETS);
  for (const path of ["/", "/index.html"]) {
    for (const encoding of ["identity", "gzip"]) {
      const res = files.serve(get(path, { "accept-encoding": encoding }));
      assert.equal(res.status, 200);
      const policy = res.headers?.["Content-Security-Policy"];
      assert.ok(policy, `${path} (${encoding}) has a CSP`);
      const csp = directives(policy);
      assert.deepEqual(csp.get("default-src"), ["'self'"]);
      assert.deepEqual(csp.get("frame-ancestors"), ["'none'"]);
      // Images too: DESIGN.md allows none but the server's own, so no data: URLs.
      for (const name of ["script-src", "style-src", "img-src", "connect-src"]) {
        assert.deepEqual(csp.get(name), ["'self'"], name);
      }
      assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|\*/);
    }
  }
});

Deno.test("a 304 for the page carries the same Content-Security-Policy", async () => {
  const files = await StaticFiles.create(ASSETS);
  const first = files.serve(get("/", { "accept-encoding": "identity" }));
  const etag = first.headers?.ETag;
  assert.ok(etag);
  const again = files.serve(get("/", { "accept-encoding": "identity", "if-none-match": etag }));
  assert.equal(again.status, 304);
  assert.equal(again.headers?.["Content-Security-Policy"], PAGE_CSP);
});

Deno.test("scripts, styles and the icon are served without a page policy", async () => {
  const files = await StaticFiles.create(ASSETS);
  const others = ASSETS.filter((asset) => !asset.contentType.startsWith("text/html"));
  assert.ok(others.length >= 3);
  for (const asset of others) {
    const res = files.serve(get(asset.path));
    assert.equal(res.status, 200, asset.path);
    assert.equal(res.headers?.["Content-Type"], asset.contentType);
    assert.equal(res.headers?.["Content-Security-Policy"], undefined, asset.path);
  }
});

Deno.test("the page holds no inline script, inline style or style attribute", () => {
  const page = ASSETS.find((asset) => asset.path === "/index.html")?.text ?? "";
  assert.match(page, /<html/i);
  // Every script has a src; no <style> element; no style= or on…= attribute.
  for (const tag of page.match(/<script\b[^>]*>/gi) ?? []) assert.match(tag, /\ssrc=/i, tag);
  assert.doesNotMatch(page, /<style\b/i);
  assert.doesNotMatch(page, /\sstyle\s*=/i);
  assert.doesNotMatch(page, /\son[a-z]+\s*=/i);
  assert.doesNotMatch(page, /javascript:/i);
});
