import assert from "node:assert/strict";
import { PAGE_CSP, StaticFiles } from "../../lib/http/static_files.ts";
import type { HttpRequest } from "../../lib/http/types.ts";
import { ASSETS } from "../../static/assets.ts";

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
  };
}

/** The directives of a policy by name, each with its sources. */
function directives(policy: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const part of policy.split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) map.set(name.toLowerCase(), sources);
  }
  return map;
}

Deno.test("the page is served with a Content-Security-Policy that allows nothing inline", async () => {
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
      for (const name of ["script-src", "style-src", "connect-src"]) {
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
