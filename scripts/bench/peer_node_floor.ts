/**
 * The floor of long polling on `node:net` (Parley's sockets with `--sockets node`): the contract and
 * the next-to-no JavaScript of `peer_deno_floor.ts` (`_floor.ts`), with sockets from `node:net`
 * instead of `Deno.listen`, for the fan-out and memory tables.
 *
 *   deno run -A scripts/bench/peer_node_floor.ts --port 8084
 */
import net from "node:net";
import { parseArgs } from "node:util";
import { FloorChannels, takeRequests } from "./_floor.ts";

const channels = new FloorChannels<net.Socket>((conn, bytes) => conn.write(bytes));

function serve(conn: net.Socket): void {
  conn.setNoDelay(true);
  let text = "";
  conn.on("data", (chunk: Buffer) => {
    text = takeRequests(
      text + chunk.toString("latin1"),
      (head, body) => channels.handle(conn, head, body),
    );
  });
  conn.on("close", () => channels.drop(conn));
  // The client went away: "close" follows.
  conn.on("error", () => {});
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  net.createServer(serve).listen(Number(values.port), "127.0.0.1");
}
