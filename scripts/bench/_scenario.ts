/** What every benchmark scenario is and gets. */

/** Options from the command line, shared by all scenarios. */
export interface BenchOptions {
  /** A smoke run: small sizes and short durations (the whole suite in about a minute). */
  quick: boolean;
  /** Rounds per measurement, when given (each scenario has its own default). */
  rounds?: number;
  /** Seconds per timed run, when given (each scenario has its own default). */
  seconds?: number;
  /** Names of the only contenders the waiting-poll scenarios start, when given. */
  only?: string[];
}

/** One benchmark: prints its own table with ratios against peers measured in the same run. */
export interface Scenario {
  name: string;
  /** One line for `--help`. */
  summary: string;
  run(options: BenchOptions): Promise<void>;
}

/** Prints a scenario's note about something it skipped, in one line. */
export function skipped(scenario: string, reason: string): void {
  console.log(`${scenario}: skipped: ${reason}`);
}
