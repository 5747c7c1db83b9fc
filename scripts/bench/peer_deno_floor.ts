/**
 * The floor of long polling on `Deno.listen`: nchan's bench contract (`_floor.ts`) with as little
 * JavaScript as will do it: a 1 KiB read buffer and one pending read per connection, heads split
 * on CRLF with no validation, one answer encoded per publish and written to every waiting poll. No
 * sessions, rooms, history or limits: what Deno's sockets cost, for the fan-out and memory tables.
 *
 *   deno run -A scripts/bench/peer_deno_floor.ts --port 8083
 */
import { parseArgs } from "node:util";
import { FloorChannels, takeRequests } from "./_floor.ts";

const latin1 = new TextDecoder("latin1");
const channels = new FloorChannels<Deno.Conn>((conn, bytes) => {
  conn.write(bytes).catch(() => conn.close());
});

async function serve(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(1024);
  let text = "";
  try {
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text = takeRequests(
        text + latin1.decode(buf.subarray(0, n)),
        (head, body) => channels.handle(conn, head, body),
      );
    }
  } catch {
    // The client went away.
  }
  channels.drop(conn);
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { port: { type: "string" } } });
  for await (const conn of Deno.listen({ hostname: "127.0.0.1", port: Number(values.port) })) {
    conn.setNoDelay(true);
    void serve(conn);
  }
}
