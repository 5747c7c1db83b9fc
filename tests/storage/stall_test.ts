/**
 * A real stalled disk: the database on an ext4 image frozen with `fsfreeze -f`. Sends answer 503
 * within --store-timeout instead of hanging, /healthz turns 503, and SIGTERM exits within
 * --shutdown-timeout with a line saying what was not flushed. Needs root and loop devices; where
 * the machine cannot freeze a file system the test reports itself ignored, with the reason.
 */
import assert from "node:assert/strict";
import { ApiClient, eventually } from "../_server.ts";
import { ServerProcess } from "./_process.ts";

/** Runs a command; true when it exits 0. */
async function run(command: string, args: string[]): Promise<boolean> {
  try {
    const { code } = await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .output();
    return code === 0;
  } catch {
    return false;
  }
}

/** Whether a process's main thread has exited (a zombie leader, or the process gone). */
function leaderExited(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** A mounted ext4 image in a temp dir, or why there cannot be one here. */
async function mountImage(): Promise<{ dir: string; mnt: string } | string> {
  if (Deno.uid() !== 0) return "needs root for loop mounts and fsfreeze";
  for (const tool of ["mkfs.ext4", "mount", "umount", "fsfreeze"]) {
    if (!await run("sh", ["-c", `command -v ${tool}`])) return `${tool} is not installed`;
  }
  const dir = await Deno.makeTempDir({ prefix: "parley-stall-" });
  const image = `${dir}/disk.img`;
  const mnt = `${dir}/mnt`;
  await Deno.mkdir(mnt);
  const file = await Deno.open(image, { create: true, write: true });
  await file.truncate(32 * 1024 * 1024);
  file.close();
  if (
    !await run("mkfs.ext4", ["-q", "-F", image]) || !await run("mount", ["-o", "loop", image, mnt])
  ) {
    await Deno.remove(dir, { recursive: true });
    return "this machine cannot loop-mount a file system";
  }
  return { dir, mnt };
}

const probe = await mountImage();
if (typeof probe !== "string") {
  await run("umount", [probe.mnt]);
  await Deno.remove(probe.dir, { recursive: true });
}

Deno.test({
  name: typeof probe === "string"
    ? `a frozen file system: 503 within --store-timeout, /healthz 503, SIGTERM keeps --shutdown-timeout (ignored: ${probe})`
    : "a frozen file system: 503 within --store-timeout, /healthz 503, SIGTERM keeps --shutdown-timeout",
  ignore: typeof probe === "string",
  async fn() {
    const mounted = await mountImage();
    if (typeof mounted === "string") throw new Error(mounted);
    const { dir, mnt } = mounted;
    let frozen = false;
    const server = await ServerProcess.start(`sqlite:${mnt}/parley.db`, [
      "--store-timeout",
      "2",
      "--shutdown-timeout",
      "3",
    ]);
    try {
      const client = new ApiClient(await server.url());
      const alice = await client.session("alice");
      await client.join(alice.token, "lobby");
      assert.equal((await client.send(alice.token, "lobby", "before the freeze")).status, 201);

      assert.ok(await run("fsfreeze", ["-f", mnt]), "fsfreeze -f");
      frozen = true;
      const started = performance.now();
      const stuck = await client.send(alice.token, "lobby", "during the freeze");
      const took = performance.now() - started;
      assert.equal(stuck.status, 503);
      assert.equal(stuck.body.error.code, "store_unavailable");
      assert.ok(took < 4_500, `answered after ${Math.round(took)} ms with --store-timeout 2`);
      assert.equal((await client.raw("/healthz")).status, 503);
      const session = await client.call("POST", "/api/session", { body: { nick: "bob" } });
      assert.equal(session.status, 503, "new sessions do not hang either");

      // SIGTERM: the server's own shutdown keeps its deadline and says what it could not flush.
      // The kernel then holds the exited process until the thaw (its SQLite thread is blocked in
      // an uninterruptible write on the frozen file system, which no process can escape), so the
      // exit is checked as the leader thread's state, and the exit status after the thaw.
      const stopping = performance.now();
      server.kill("SIGTERM");
      await eventually(
        () =>
          /store did not (confirm writes|close) before the shutdown deadline/.test(server.stderr),
        { timeoutMs: 6_000, what: () => `the shutdown deadline line:\n${server.stderr}` },
      );
      await eventually(() => leaderExited(server.child.pid), {
        timeoutMs: 6_000,
        what: () => "the server's main thread to exit",
      });
      const stopTook = performance.now() - stopping;
      assert.ok(
        stopTook < 6_000,
        `SIGTERM took ${Math.round(stopTook)} ms with --shutdown-timeout 3`,
      );
      assert.match(server.stderr, /store failing .*did not finish within 2 s/);
      assert.ok(await run("fsfreeze", ["-u", mnt]), "fsfreeze -u");
      frozen = false;
      const { status } = await server.exit(10_000);
      assert.equal(status.code, 0, server.stderr);
    } finally {
      if (frozen) await run("fsfreeze", ["-u", mnt]);
      await server.stop("SIGKILL");
      await run("umount", [mnt]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
