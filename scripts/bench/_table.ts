/** Tables and figures as the benchmarks print them. */

/** Prints a title line and rows as an aligned table (numbers right-aligned). */
export function printTable(header: string[], rows: (string | number)[][], title?: string): void {
  if (title) console.log(`\n${title}`);
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  const numeric = header.map((_, i) =>
    rows.length > 0 &&
    rows.every((r) => /^[-+]?[\d,.]+(×|%| ms| s| KiB| MiB)?$|^–$/.test(String(r[i])))
  );
  for (const [n, row] of cells.entries()) {
    const line = row.map((
      c,
      i,
    ) => (numeric[i] && n > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)));
    console.log(line.join("  ").trimEnd());
    if (n === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** A count with thousands separators. */
export function count(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Milliseconds with one decimal. */
export function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(1) : "–";
}

/** `a / b` as a ratio like `1.23×`, or `–` when either is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return "–";
  }
  return `${(a / b).toFixed(2)}×`;
}

/** KiB as MiB with one decimal. */
export function mib(kib: number): string {
  return Number.isFinite(kib) ? (kib / 1024).toFixed(1) : "–";
}

/** The `p`-th percentile (0–100) by nearest rank; NaN for no values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median of some numbers; NaN for none. */
export function median(values: number[]): number {
  return percentile(values, 50);
}

/** The largest of some numbers (without spreading them into arguments); NaN for none. */
export function maxOf(values: number[]): number {
  let max = NaN;
  for (const v of values) if (Number.isNaN(max) || v > max) max = v;
  return max;
}
