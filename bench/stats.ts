/** Small helpers shared by the benchmarks: order statistics, timing, a plain-text table. */

/** The p-th percentile (0..100) with linear interpolation between closest ranks. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) throw new Error("percentile of no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

export function median(samples: number[]): number {
  return percentile(samples, 50);
}

/** Milliseconds taken by `fn`, from the monotonic clock. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export interface Series {
  label: string;
  samples: number[];
}

/**
 * Runs every series' function once per round, `warmup` rounds unrecorded then `runs` recorded.
 * The order inside a round rotates, so no series always runs first (or right after another).
 */
export async function interleave(
  entries: { label: string; run: () => Promise<unknown> }[],
  options: { warmup: number; runs: number },
): Promise<Series[]> {
  const series = entries.map((e) => ({ label: e.label, samples: [] as number[] }));
  for (let round = 0; round < options.warmup + options.runs; round += 1) {
    for (let k = 0; k < entries.length; k += 1) {
      const index = (round + k) % entries.length;
      const elapsed = await timeMs(entries[index]!.run);
      if (round >= options.warmup) series[index]!.samples.push(elapsed);
    }
  }
  return series;
}

export function ms(value: number): string {
  return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

/** A left-aligned first column and right-aligned numbers. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  const line = (row: string[]) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function seriesTable(series: Series[]): string {
  return table(
    ["command", "runs", "median", "p90", "min", "max"],
    series.map((s) => [
      s.label,
      String(s.samples.length),
      ms(median(s.samples)),
      ms(percentile(s.samples, 90)),
      ms(Math.min(...s.samples)),
      ms(Math.max(...s.samples)),
    ]),
  );
}

/** The line scripts look for: `RATIO <name> <value> (target <= X)`. */
export function ratioLine(name: string, value: number, target: number): string {
  return `RATIO ${name} ${value.toFixed(2)} (target <= ${target})`;
}
