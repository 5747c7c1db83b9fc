/**
 * Keep-alive request throughput of Parley's HTTP layer against `Deno.serve`, both answering the
 * same tiny handler, measured with wrk in one run. Prints a table with the ratio.
 */
import { HttpServer } from "../lib/http/server.ts";
import { printTable, wrk } from "./_wrk.ts";

const BODY = "hello, world\n";

async function measureParley(seconds: number, connections: number) {
  const server = new HttpServer(() => ({
    status: 200,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
    body: BODY,
  }), { hostname: "127.0.0.1", port: 0, maxPipeline: 16 });
  const addr = server.listen();
  try {
    return await wrk(`http://127.0.0.1:${addr.port}/`, { seconds, connections });
  } finally {
    await server.close();
  }
}

async function measureDenoServe(seconds: number, connections: number) {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response(BODY, { headers: { "Content-Type": "text/plain; charset=utf-8" } }),
  );
  try {
    return await wrk(`http://127.0.0.1:${server.addr.port}/`, { seconds, connections });
  } finally {
    ac.abort();
    await server.finished;
  }
}

/** Runs the comparison and prints it; `rounds` alternate the two servers to even out noise. */
export async function benchHttp(seconds = 5, connections = 50, rounds = 2): Promise<void> {
  const parley: number[] = [];
  const deno: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const p = await measureParley(seconds, connections);
    const d = await measureDenoServe(seconds, connections);
    if (!p || !d) {
      console.log("bench_http: wrk is not installed (apt-get install -y wrk); skipped");
      return;
    }
    parley.push(p.rps);
    deno.push(d.rps);
  }
  const best = (xs: number[]) => Math.max(...xs);
  console.log(
    `\nHTTP keep-alive throughput: wrk -t1 -c${connections} -d${seconds}s, best of ${rounds}`,
  );
  printTable(["server", "requests/s", "ratio to Deno.serve"], [
    ["Deno.serve", best(deno).toFixed(0), "1.00"],
    ["parley HttpServer", best(parley).toFixed(0), (best(parley) / best(deno)).toFixed(2)],
  ]);
}

if (import.meta.main) await benchHttp();
