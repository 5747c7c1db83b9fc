import { HttpError, STATUS } from "./errors.ts";
import type { Handler, HttpRequest, HttpResponse, Params } from "./types.ts";

interface Route {
  /** Literal segments, or `null` where a parameter goes. */
  segments: (string | null)[];
  names: string[];
  methods: Map<string, Handler>;
}

/** The methods of RFC 9110 §9 and PATCH (RFC 5789): any other is one this server does not know. */
const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
]);

/**
 * Routes by method and path pattern (`/api/rooms/:room/join`). Parameters are percent-decoded
 * per segment, so `%2F` stays inside a parameter; a literal segment matches its percent-encoded
 * spellings too (`/%68ealthz` is `/healthz`, RFC 3986 §6.2.2.2). An unknown path is 404; a known
 * path with another method is 405 with `Allow`, an unknown method 501. HEAD is served by the GET
 * handler.
 */
export class Router {
  #routes: Route[] = [];
  /** Routes by segment count, in the order added: a request is matched against its own count only. */
  #bySegments: Route[][] = [];

  /** Adds a handler for `method` on `pattern`; `:name` segments capture parameters. */
  add(method: string, pattern: string, handler: Handler): this {
    if (!pattern.startsWith("/")) {
      throw new TypeError(`Cannot add route: "${pattern}" must start with /`);
    }
    const parts = pattern.split("/").slice(1);
    const segments = parts.map((p) => (p.startsWith(":") ? null : p));
    const names = parts.filter((p) => p.startsWith(":")).map((p) => p.slice(1));
    let route = this.#routes.find((r) =>
      r.segments.length === segments.length && r.segments.every((s, i) => s === segments[i])
    );
    if (!route) {
      route = { segments, names, methods: new Map() };
      this.#routes.push(route);
      (this.#bySegments[segments.length] ??= []).push(route);
    }
    if (route.methods.has(method)) {
      throw new TypeError(`Cannot add route: ${method} ${pattern} exists`);
    }
    route.methods.set(method, handler);
    return this;
  }

  /** Shorthand for `add("GET", …)`. */
  get(pattern: string, handler: Handler): this {
    return this.add("GET", pattern, handler);
  }

  /** Shorthand for `add("POST", …)`. */
  post(pattern: string, handler: Handler): this {
    return this.add("POST", pattern, handler);
  }

  /** Shorthand for `add("DELETE", …)`. */
  delete(pattern: string, handler: Handler): this {
    return this.add("DELETE", pattern, handler);
  }

  /** Answers a request with its route's handler; throws HttpError 404/405/400. */
  handle(req: HttpRequest): HttpResponse | Promise<HttpResponse> {
    // parts[0] is what precedes the first "/" (empty): segment i is parts[i + 1].
    const parts = req.path.split("/");
    const routes = this.#bySegments[parts.length - 1] ?? [];
    // Routes of the same shape can share a path (`/things/:id`, `/things/new`): 405 only when
    // none of them has the method, with the methods of all of them in Allow.
    let allow: string[] | null = null;
    for (const route of routes) {
      const params = match(route, parts);
      if (!params) continue;
      const handler = route.methods.get(req.method) ??
        (req.method === "HEAD" ? route.methods.get("GET") : undefined);
      if (handler) return handler(req, params);
      allow ??= [];
      for (const method of route.methods.keys()) if (!allow.includes(method)) allow.push(method);
    }
    if (allow && !KNOWN_METHODS.has(req.method)) {
      // RFC 9110 §15.6.2: a method the server does not recognise at all is 501, not 405.
      throw new HttpError(
        STATUS.NotImplemented,
        "not_implemented",
        `Method ${req.method} is not one this server knows`,
      );
    }
    if (allow) {
      if (allow.includes("GET") && !allow.includes("HEAD")) allow.push("HEAD");
      throw new HttpError(
        STATUS.MethodNotAllowed,
        "method_not_allowed",
        `Method ${req.method} is not allowed here; use ${allow.join(", ")}`,
        { headers: { Allow: allow.join(", ") } },
      );
    }
    throw new HttpError(STATUS.NotFound, "not_found", `Nothing at ${req.path}`);
  }
}

/** The params of `route` for the path split at "/" (`parts[0]` precedes the first "/"), or null. */
function match(route: Route, parts: string[]): Params | null {
  const segments = route.segments;
  if (segments.length !== parts.length - 1) return null;
  let params: Params | null = null;
  let n = 0;
  for (let i = 0; i < segments.length; i++) {
    const literal = segments[i];
    const part = parts[i + 1]!;
    if (literal !== null) {
      if (literal !== part && (!part.includes("%") || literal !== decodedOrNull(part))) return null;
      continue;
    }
    params ??= {};
    params[route.names[n++]!] = decodeSegment(part);
  }
  return params ?? {};
}

/** A segment decoded, or null when its percent-encoding is invalid (then it matches no literal). */
function decodedOrNull(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

function decodeSegment(part: string): string {
  // Most segments have no escapes, and decodeURIComponent costs a call into the engine.
  if (!part.includes("%")) return part;
  const decoded = decodedOrNull(part);
  if (decoded === null) {
    throw new HttpError(STATUS.BadRequest, "bad_request", "The path has invalid percent-encoding");
  }
  return decoded;
}
