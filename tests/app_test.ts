/** The assembled app (lib/app.ts): what every answer of the running server carries. */
import assert from "node:assert/strict";
import { SECURITY_HEADERS } from "../lib/http/response.ts";
import { PAGE_CSP } from "../lib/http/static_files.ts";
import { withServer } from "./_server.ts";

function assertSecurityHeaders(headers: Headers, what: string): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    assert.equal(headers.get(name), value, `${what}: ${name}`);
  }
  assert.equal(headers.get("strict-transport-security"), null, `${what}: no HSTS without TLS`);
}

Deno.test("the page, static files, 304s, API answers and errors all carry the security headers; HTML also the CSP", async () => {
  await withServer({}, async (_app, client) => {
    const page = await client.raw("/");
    assert.equal(page.status, 200);
    assertSecurityHeaders(page.headers, "/");
    assert.equal(page.headers.get("content-security-policy"), PAGE_CSP);

    for (const path of ["/app.js", "/style.css", "/icon.svg"]) {
      const file = await client.raw(path);
      assert.equal(file.status, 200, path);
      assertSecurityHeaders(file.headers, path);
      const again = await client.raw(path, { "if-none-match": file.headers.get("etag")! });
      assert.equal(again.status, 304, `${path} revalidated`);
      assertSecurityHeaders(again.headers, `${path} 304`);
    }

    const { token } = await client.session("alice");
    const answers = [
      ["GET /api/rooms", await client.call("GET", "/api/rooms"), 200],
      ["POST join", await client.join(token, "lobby"), 200],
      ["POST bad JSON", await client.call("POST", "/api/session", { body: "{" }), 400],
      ["GET events without a token", await client.call("GET", "/api/events?wait=0"), 401],
      ["POST an empty message", await client.send(token, "lobby", ""), 422],
      ["GET /healthz", await client.call("GET", "/healthz"), 200],
    ] as const;
    for (const [what, res, status] of answers) {
      assert.equal(res.status, status, what);
      assertSecurityHeaders(res.headers, what);
    }
    for (const path of ["/metrics", "/nowhere"]) {
      const res = await client.raw(path);
      assert.equal(res.status, path === "/nowhere" ? 404 : 200, path);
      assertSecurityHeaders(res.headers, path);
    }
  });
});
