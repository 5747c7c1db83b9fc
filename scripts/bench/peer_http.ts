/**
 * One tiny handler behind either Parley's `HttpServer` or `Deno.serve`, for the keep-alive
 * requests/s comparison: the same body and header from both, in a process of its own. `floor` is
 * what `Deno.listen` allows at all: one read and one write of a fixed answer per request, no
 * parsing (it answers each read once, so it is only right for clients that wait for each answer).
 *
 *   deno run -A scripts/bench/peer_http.ts --server parley|parley-node|deno|floor --port P
 */
import { parseArgs } from "node:util";
import { HttpServer } from "../../lib/http/server.ts";

const BODY = "hello, world\n";
const TYPE = "text/plain; charset=utf-8";

/** Serves the fixed answer once per read on every connection. */
async function floor(port: number): Promise<void> {
  const answer = new TextEncoder().encode(
    `HTTP/1.1 200 OK\r\nContent-Type: ${TYPE}\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
  );
  for await (const conn of Deno.listen({ hostname: "127.0.0.1", port })) {
    (async () => {
      const buf = new Uint8Array(4096);
      try {
        while (await conn.read(buf) !== null) await conn.write(answer);
      } catch {
        // The client went away: nothing to answer.
      }
      conn.close();
    })();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { server: { type: "string" }, port: { type: "string" } },
  });
  const port = Number(values.port ?? 8082);
  if (values.server === "parley" || values.server === "parley-node") {
    const server = new HttpServer(
      () => ({ status: 200, headers: { "Content-Type": TYPE }, body: BODY }),
      {
        hostname: "127.0.0.1",
        port,
        maxPipeline: 16,
        sockets: values.server === "parley-node" ? "node" : "deno",
      },
    );
    void server.listen();
  } else if (values.server === "deno") {
    Deno.serve(
      { hostname: "127.0.0.1", port, onListen() {} },
      () => new Response(BODY, { headers: { "Content-Type": TYPE } }),
    );
  } else if (values.server === "floor") {
    void floor(port);
  } else {
    console.error("peer_http: --server must be parley, parley-node, deno or floor");
    Deno.exit(2);
  }
}
