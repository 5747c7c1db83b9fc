/**
 * One tiny handler behind either Parley's `HttpServer` or `Deno.serve`, for the keep-alive
 * requests/s comparison: the same body and header from both, in a process of its own.
 *
 *   deno run -A scripts/bench/peer_http.ts --server parley|deno --port P
 */
import { parseArgs } from "node:util";
import { HttpServer } from "../../lib/http/server.ts";

const BODY = "hello, world\n";
const TYPE = "text/plain; charset=utf-8";

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { server: { type: "string" }, port: { type: "string" } },
  });
  const port = Number(values.port ?? 8082);
  if (values.server === "parley") {
    const server = new HttpServer(
      () => ({ status: 200, headers: { "Content-Type": TYPE }, body: BODY }),
      { hostname: "127.0.0.1", port, maxPipeline: 16 },
    );
    server.listen();
  } else if (values.server === "deno") {
    Deno.serve(
      { hostname: "127.0.0.1", port, onListen() {} },
      () => new Response(BODY, { headers: { "Content-Type": TYPE } }),
    );
  } else {
    console.error("peer_http: --server must be parley or deno");
    Deno.exit(2);
  }
}
