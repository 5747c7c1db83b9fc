import { HttpError, STATUS } from "./errors.ts";
import { trimOws } from "./parser.ts";
import type { HttpRequest, HttpResponse } from "./types.ts";

/** One embedded file. */
export interface StaticAsset {
  /** URL path, e.g. `/app.js`. */
  path: string;
  contentType: string;
  text: string;
}

/**
 * The Content-Security-Policy of HTML answers: scripts, styles, images and requests from this
 * server only, no inline code, and no framing (DESIGN.md, "The page").
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "img-src 'self'",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

interface Prepared {
  plain: Uint8Array;
  gzip: Uint8Array;
  etag: string;
  gzipEtag: string;
  contentType: string;
}

/**
 * Embedded files served with a strong `ETag` per representation, `304` on `If-None-Match`, and
 * gzip when the client accepts it. Everything is encoded, compressed and hashed once at start.
 */
export class StaticFiles {
  #files: Map<string, Prepared>;

  private constructor(files: Map<string, Prepared>) {
    this.#files = files;
  }

  /** Prepares the assets; `/` serves `/index.html`. */
  static async create(assets: StaticAsset[]): Promise<StaticFiles> {
    const files = new Map<string, Prepared>();
    for (const asset of assets) {
      const plain = new TextEncoder().encode(asset.text);
      const gzip = await gzipBytes(plain);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", plain));
      const hash = Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join(
        "",
      );
      const prepared = {
        plain,
        gzip,
        etag: `"${hash}"`,
        gzipEtag: `"${hash}-gz"`,
        contentType: asset.contentType,
      };
      files.set(asset.path, prepared);
      if (asset.path === "/index.html") files.set("/", prepared);
    }
    return new StaticFiles(files);
  }

  /** The paths served. */
  get paths(): string[] {
    return [...this.#files.keys()];
  }

  /** Answers a GET or HEAD for an embedded file; 404 for any other path. */
  serve(req: HttpRequest): HttpResponse {
    const file = this.#files.get(req.path);
    if (!file) throw new HttpError(STATUS.NotFound, "not_found", `Nothing at ${req.path}`);
    const gzip = acceptsGzip(req.headers.get("accept-encoding"));
    const etag = gzip ? file.gzipEtag : file.etag;
    const headers: Record<string, string> = {
      "Content-Type": file.contentType,
      "Cache-Control": "no-cache",
      ETag: etag,
      Vary: "Accept-Encoding",
    };
    if (file.contentType.startsWith("text/html")) headers["Content-Security-Policy"] = PAGE_CSP;
    if (matchesEtag(req.headers.get("if-none-match"), etag)) {
      return { status: STATUS.NotModified, headers };
    }
    if (gzip) headers["Content-Encoding"] = "gzip";
    return { status: STATUS.OK, headers, body: gzip ? file.gzip : file.plain };
  }
}

async function gzipBytes(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * True when `Accept-Encoding` makes gzip acceptable and not less wanted than identity (RFC 9110
 * §12.5.3): an explicit `gzip` (or `x-gzip`) decides by its own q-value, `*` only for codings
 * not listed, and q=0 means "not acceptable". Elements that do not parse (a q-value outside the
 * grammar, other parameters) are ignored.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  // Weights in thousandths; -1 = not listed.
  let gzip = -1;
  let identity = -1;
  let star = -1;
  for (const part of header.split(",")) {
    const element = trimOws(part);
    if (element === "") continue;
    const semicolon = element.indexOf(";");
    const coding = semicolon < 0 ? element : trimOws(element.slice(0, semicolon));
    const q = semicolon < 0 ? 1000 : weight(element, semicolon);
    if (q < 0) continue;
    if (equalsAsciiLower(coding, "gzip") || equalsAsciiLower(coding, "x-gzip")) {
      gzip = Math.max(gzip, q);
    } else if (equalsAsciiLower(coding, "identity")) identity = Math.max(identity, q);
    else if (coding === "*") star = Math.max(star, q);
  }
  const gzipQ = gzip >= 0 ? gzip : star;
  if (gzipQ <= 0) return false;
  // Unlisted identity is acceptable but states no preference; `*` covers it like any coding.
  const identityQ = identity >= 0 ? identity : star;
  return identityQ <= gzipQ;
}

/**
 * The weight `OWS ";" OWS "q=" qvalue` at `text[at]` (the ";") to the end, in thousandths;
 * -1 when it does not match: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
 */
function weight(text: string, at: number): number {
  let i = at + 1;
  const n = text.length;
  while (i < n && (text[i] === " " || text[i] === "\t")) i++;
  if ((text[i] !== "q" && text[i] !== "Q") || text[i + 1] !== "=") return -1;
  i += 2;
  const whole = text[i];
  if (whole !== "0" && whole !== "1") return -1;
  i++;
  let thousandths = whole === "1" ? 1000 : 0;
  if (i < n) {
    if (text[i] !== ".") return -1;
    i++;
    for (let scale = 100; i < n; i++, scale /= 10) {
      const c = text.charCodeAt(i) - 48;
      if (scale < 1 || c < 0 || c > 9 || (whole === "1" && c !== 0)) return -1;
      thousandths += c * scale;
    }
  }
  return thousandths;
}

function equalsAsciiLower(value: string, lower: string): boolean {
  if (value.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = value.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Weak comparison of `If-None-Match` against our ETag (RFC 9110 §13.1.2). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  // OWS only: String#trim would also strip U+00A0, which is part of a (malformed) tag.
  if (trimOws(header) === "*") return true;
  return header.split(",").some((part) => {
    const tag = trimOws(part);
    return (tag.startsWith("W/") ? tag.slice(2) : tag) === etag;
  });
}
