/** What /proc says about a server's processes: resident memory and CPU time. */

/** Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`; 100 on Linux). */
const CLOCK_TICKS = 100;

function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]);
}

/** Resident memory in KiB, summed over `pids`. */
export function rssKiB(pids: number[]): number {
  return pids.reduce((total, pid) => total + statusKiB(pid, "VmRSS"), 0);
}

/** The highest resident memory the process had so far (VmHWM), in KiB. */
export function peakRssKiB(pid: number): number {
  return statusKiB(pid, "VmHWM");
}

/** User plus system CPU seconds used so far, summed over `pids` (all threads of each). */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which may hold spaces, start after its closing ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), here 11 and 12 (from field 3 on).
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS;
}

/** The process and its direct children (e.g. nginx's master and workers). */
export function withChildren(pid: number): number[] {
  const pids = [pid];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) pids.push(Number(entry.name));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

/** Samples the summed resident memory of `pids()` every `ms` and keeps the highest. */
export class RssSampler {
  #peak = 0;
  #timer: ReturnType<typeof setInterval>;

  constructor(pids: () => number[], ms = 100) {
    const sample = () => {
      try {
        this.#peak = Math.max(this.#peak, rssKiB(pids()));
      } catch {
        // A process exited between listing and reading.
      }
    };
    sample();
    this.#timer = setInterval(sample, ms);
  }

  /** Stops sampling and returns the highest sum seen, in KiB. */
  stop(): number {
    clearInterval(this.#timer);
    return this.#peak;
  }
}
