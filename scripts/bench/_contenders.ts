/** The servers a long-poll scenario compares, each started fresh for every round. */
import { nchanMissing, startNchan } from "./_peers.ts";
import type { BenchOptions } from "./_scenario.ts";
import {
  type Server,
  startDenoFloor,
  startDenoPeer,
  startNodeFloor,
  startServer,
} from "./_server_process.ts";

/** A server under test and how to start one. */
export interface Contender {
  name: string;
  /** Which contract its polls speak. */
  kind: "chat" | "nchan";
  /** Why it cannot run here, or null. */
  missing(): string | null;
  start(): Promise<Server>;
}

/** Parley on the memory store, limits off. */
export const PARLEY: Contender = {
  name: "parley",
  kind: "chat",
  missing: () => null,
  start: () => startServer("memory"),
};

/** The same with its plain TCP sockets from `node:net` (`--sockets node`). */
export const PARLEY_NODE: Contender = {
  name: "parley --sockets node",
  kind: "chat",
  missing: () => null,
  start: () => startServer("memory", ["--sockets", "node"]),
};

/** The minimal Deno.serve build of the same contract. */
export const DENO_PEER: Contender = {
  name: "Deno.serve peer",
  kind: "chat",
  missing: () => null,
  start: startDenoPeer,
};

/** What Deno's sockets allow: nchan's contract on `Deno.listen` with next to no JavaScript. */
export const DENO_FLOOR: Contender = {
  name: "Deno.listen floor",
  kind: "nchan",
  missing: () => null,
  start: startDenoFloor,
};

/** The same floor on `node:net`, the sockets Parley's plain TCP uses. */
export const NODE_FLOOR: Contender = {
  name: "node:net floor",
  kind: "nchan",
  missing: () => null,
  start: startNodeFloor,
};

/** nginx with nchan, one channel per room. */
export const NCHAN: Contender = {
  name: "nginx+nchan",
  kind: "nchan",
  missing: nchanMissing,
  start: startNchan,
};

/**
 * The contenders that can run here and that `--only` names (all without it); prints one line for
 * each that cannot.
 */
export function available(
  scenario: string,
  contenders: Contender[],
  options: BenchOptions,
): Contender[] {
  return contenders.filter((c) => {
    if (options.only && !options.only.includes(c.name)) return false;
    const reason = c.missing();
    if (reason) console.log(`${scenario}: ${c.name} skipped: ${reason}`);
    return reason === null;
  });
}

/** Runs `fn` with a fresh server of `contender`, always stopping it; notes what it logged. */
export async function withFresh<T>(
  contender: Contender,
  fn: (server: Server) => Promise<T>,
  notes?: string[],
): Promise<T> {
  const server = await contender.start();
  try {
    return await fn(server);
  } finally {
    await server.stop();
    const said = server.stderr().trim();
    if (said && notes) notes.push(`${contender.name} wrote to stderr: ${said.slice(0, 500)}`);
  }
}

/** Everything a waiting-poll table compares: Parley both ways, its peers and both floors. */
export const WAITING_POLL_CONTENDERS: readonly Contender[] = [
  NCHAN,
  PARLEY,
  PARLEY_NODE,
  DENO_PEER,
  DENO_FLOOR,
  NODE_FLOOR,
];

/** Whether the contender named `name` is Parley (either socket kind), the subject, not a peer. */
export function isParley(name: string): boolean {
  return name === PARLEY.name || name === PARLEY_NODE.name;
}
