import assert from "node:assert/strict";
import { HttpError } from "../../lib/http/errors.ts";
import { Router } from "../../lib/http/router.ts";
import type { HttpRequest, HttpResponse, Params } from "../../lib/http/types.ts";

function request(method: string, target: string): HttpRequest {
  const q = target.indexOf("?");
  return {
    method,
    target,
    path: q < 0 ? target : target.slice(0, q),
    query: new URLSearchParams(q < 0 ? "" : target.slice(q + 1)),
    version: "HTTP/1.1",
    headers: new Map(),
    body: new Uint8Array(),
    remoteAddr: "127.0.0.1",
    signal: new AbortController().signal,
    abortable: new AbortController().signal,
  };
}

/** A handler that answers with its name and the params it got. */
function named(name: string) {
  return (_req: HttpRequest, params: Params): HttpResponse => ({
    status: 200,
    body: JSON.stringify({ name, params }),
  });
}

async function call(router: Router, method: string, target: string) {
  const res = await router.handle(request(method, target));
  return JSON.parse(res.body as string);
}

function httpError(router: Router, method: string, target: string): HttpError {
  try {
    router.handle(request(method, target));
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw error;
  }
  throw new Error(`${method} ${target} did not fail`);
}

function chatRouter(): Router {
  return new Router()
    .post("/api/session", named("create session"))
    .delete("/api/session", named("delete session"))
    .get("/api/rooms", named("rooms"))
    .post("/api/rooms/:room/join", named("join"))
    .post("/api/rooms/:room/messages", named("send"))
    .get("/api/rooms/:room/history", named("history"))
    .get("/", named("page"));
}

Deno.test("router dispatches by method and path", async () => {
  const router = chatRouter();
  assert.deepEqual(await call(router, "POST", "/api/session"), {
    name: "create session",
    params: {},
  });
  assert.deepEqual(await call(router, "DELETE", "/api/session"), {
    name: "delete session",
    params: {},
  });
  assert.deepEqual(await call(router, "GET", "/api/rooms"), { name: "rooms", params: {} });
  assert.deepEqual(await call(router, "GET", "/api/rooms/lobby/history?limit=5"), {
    name: "history",
    params: { room: "lobby" },
  });
  assert.deepEqual(await call(router, "GET", "/"), { name: "page", params: {} });
});

Deno.test("router answers an unknown path with 404 not_found", () => {
  const router = chatRouter();
  for (
    const path of [
      "/nope",
      "/api",
      "/api/rooms/lobby",
      "/api/rooms/lobby/join/extra",
      "/api/rooms/",
    ]
  ) {
    const error = httpError(router, "GET", path);
    assert.equal(error.status, 404, path);
    assert.equal(error.code, "not_found");
    assert.equal(error.close, false);
  }
});

Deno.test("router answers a known path with another method with 405 and Allow", () => {
  const router = chatRouter();
  const session = httpError(router, "GET", "/api/session");
  assert.equal(session.status, 405);
  assert.equal(session.code, "method_not_allowed");
  assert.equal(session.headers.Allow, "POST, DELETE");
  const join = httpError(router, "GET", "/api/rooms/lobby/join");
  assert.equal(join.status, 405);
  assert.equal(join.headers.Allow, "POST");
  assert.equal(httpError(router, "HEAD", "/api/rooms/lobby/join").headers.Allow, "POST");
});

Deno.test("router serves HEAD with the GET handler and lists HEAD in Allow", async () => {
  const router = chatRouter();
  assert.deepEqual(await call(router, "HEAD", "/api/rooms"), { name: "rooms", params: {} });
  const error = httpError(router, "POST", "/api/rooms");
  assert.equal(error.status, 405);
  assert.equal(error.headers.Allow, "GET, HEAD");
});

Deno.test("router answers a method it does not know at all with 501, not 405", () => {
  const router = chatRouter();
  for (const method of ["FOO", "PROPFIND", "get"]) {
    const error = httpError(router, method, "/api/session");
    assert.equal(error.status, 501, method);
    assert.equal(error.code, "not_implemented");
  }
  // A known method the path does not take stays 405; an unknown path stays 404.
  assert.equal(httpError(router, "PUT", "/api/session").status, 405);
  assert.equal(httpError(router, "FOO", "/nope").status, 404);
});

Deno.test("router matches a literal segment spelled with percent-encoding", async () => {
  const router = chatRouter();
  assert.deepEqual(await call(router, "GET", "/%61pi/rooms"), { name: "rooms", params: {} });
  assert.deepEqual(await call(router, "GET", "/api/%72ooms/lobby/%68istory"), {
    name: "history",
    params: { room: "lobby" },
  });
  assert.equal(httpError(router, "GET", "/api%2Frooms").status, 404, "%2F never splits");
  // Bad percent-encoding where a literal goes names nothing here: 404, as before.
  assert.equal(httpError(router, "GET", "/%zz").status, 404);
  assert.equal(httpError(router, "GET", "/api/rooms%ff").status, 404);
});

Deno.test("router decodes each parameter on its own, so %2F stays inside it", async () => {
  const router = chatRouter();
  assert.deepEqual(await call(router, "POST", "/api/rooms/a%2Fb/join"), {
    name: "join",
    params: { room: "a/b" },
  });
  assert.deepEqual(await call(router, "POST", "/api/rooms/caf%C3%A9%20bar/messages"), {
    name: "send",
    params: { room: "café bar" },
  });
  // An encoded slash does not make a new segment: this is not the two-segment room route.
  assert.equal(httpError(router, "POST", "/api/rooms%2Flobby/join").status, 404);
  const many = new Router().get("/a/:x/:y", named("two"));
  assert.deepEqual(await call(many, "GET", "/a/%25/%3F"), {
    name: "two",
    params: { x: "%", y: "?" },
  });
});

Deno.test("router answers bad percent-encoding in a parameter with 400", () => {
  const router = chatRouter();
  for (const room of ["%", "%zz", "a%2", "%C3", "%FF"]) {
    const error = httpError(router, "POST", `/api/rooms/${room}/join`);
    assert.equal(error.status, 400, room);
    assert.equal(error.code, "bad_request");
  }
});

Deno.test("router finds a route of the same shape that has the method", async () => {
  const router = new Router()
    .get("/things/:id", named("show"))
    .post("/things/new", named("create"));
  assert.deepEqual(await call(router, "POST", "/things/new"), { name: "create", params: {} });
  assert.deepEqual(await call(router, "GET", "/things/new"), {
    name: "show",
    params: { id: "new" },
  });
  const error = httpError(router, "DELETE", "/things/new");
  assert.equal(error.status, 405);
  assert.equal(error.headers.Allow, "GET, POST, HEAD");
  assert.equal(httpError(router, "POST", "/things/1").headers.Allow, "GET, HEAD");
});

Deno.test("router refuses a pattern without a leading slash or a route added twice", () => {
  const router = new Router().get("/a", named("a"));
  assert.throws(() => router.get("a", named("b")), TypeError);
  assert.throws(() => router.get("/a", named("c")), TypeError);
  assert.throws(() => new Router().get("/x/:p", named("x")).get("/x/:q", named("y")), TypeError);
});
