import { HttpError, STATUS } from "./errors.ts";
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
  "img-src 'self' data:",
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

/** True when `Accept-Encoding` lists gzip (or `*`) with a non-zero q-value. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  for (const part of header.split(",")) {
    const [coding = "", ...params] = part.trim().toLowerCase().split(";");
    if (coding.trim() !== "gzip" && coding.trim() !== "*") continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

/** Weak comparison of `If-None-Match` against our ETag (RFC 9110 §13.1.2). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
