/** A Parley server in a child process for benchmarks and soak runs, and a tiny API client. */
const ROOT = new URL("../", import.meta.url);

/** A Parley server in its own process. */
export interface Server {
  url: string;
  /** The process id, e.g. to read its memory from /proc. */
  pid: number;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (the server logs nothing below `error` to announce one). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts `main.ts` on a free loopback port with the limits off, plus `flags`; waits until healthy. */
export async function startServer(store: string, flags: string[] = []): Promise<Server> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--store",
      store,
      "--send-rate",
      "0",
      "--session-rate",
      "0",
      "--log-level",
      "error",
      ...flags,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Keep stderr drained (a full pipe would stall the server) and at hand for error reports.
  let stderr = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      if (stderr.length < 64 * 1024) stderr += decoder.decode(chunk, { stream: true });
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Exited already.
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, 15_000);
    await status;
    clearTimeout(timer);
    await drained;
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (true) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) return { url, pid: child.pid, stop };
    } catch {
      // Not listening yet.
    }
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`the ${store} server did not start:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One API call; throws with the answer on a non-2xx status. */
export async function api(
  url: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
) {
  const res = await fetch(url + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
