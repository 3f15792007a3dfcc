import type { ProbeOpKind, ProbeRun } from "../host/fuse-probe-types.js";

/**
 * Upper bounds, in seconds, of the buckets for FUSE probe latencies: 100 µs (an answer from the
 * kernel's cache or a local server) to 10 s (past any sensible probe deadline). Fixed, so
 * histograms from different runs and nodes can be added up.
 */
export const PROBE_LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** A histogram as JSON: Prometheus's cumulative buckets, the +Inf bucket being `count`. */
export interface LatencyHistogramJSON {
  /** Bucket upper bounds in seconds, ascending. */
  le: number[];
  /** Cumulative: buckets[i] observations were <= le[i]. */
  buckets: number[];
  count: number;
  /** Sum of all observations, in seconds. */
  sum: number;
}

function checkBounds(bounds: readonly number[]): void {
  if (bounds.length === 0) throw new RangeError("a histogram needs at least one bucket bound");
  bounds.forEach((bound, i) => {
    if (!Number.isFinite(bound) || bound < 0)
      throw new RangeError(`bucket bound ${bound} is not a finite number >= 0`);
    if (i > 0 && bound <= bounds[i - 1]!) throw new RangeError("bucket bounds must be strictly ascending");
  });
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A latency histogram with fixed bucket bounds in seconds, as a Prometheus histogram counts. */
export class LatencyHistogram {
  readonly bounds: readonly number[];
  /** Observations per bucket, not cumulative; those above the last bound are count minus their sum. */
  readonly #counts: number[];
  #count = 0;
  #sum = 0;

  constructor(bounds: readonly number[] = PROBE_LATENCY_BUCKETS) {
    checkBounds(bounds);
    this.bounds = bounds === PROBE_LATENCY_BUCKETS ? bounds : Object.freeze([...bounds]);
    this.#counts = bounds.map(() => 0);
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#sum;
  }

  /** Counts one observation of `seconds` in the first bucket whose bound is >= it (le is inclusive). */
  observe(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) throw new RangeError(`cannot observe ${seconds} s`);
    let low = 0;
    let high = this.bounds.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.bounds[mid]! >= seconds) high = mid;
      else low = mid + 1;
    }
    if (low < this.#counts.length) this.#counts[low]! += 1;
    this.#count += 1;
    this.#sum += seconds;
  }

  /** Cumulative buckets, the last one `le: Infinity` (Prometheus's "+Inf"), holding `count`. */
  cumulative(): { le: number; count: number }[] {
    let running = 0;
    const buckets = this.bounds.map((le, i) => {
      running += this.#counts[i]!;
      return { le, count: running };
    });
    buckets.push({ le: Number.POSITIVE_INFINITY, count: this.#count });
    return buckets;
  }

  /** Adds another histogram's observations; both must have the same bounds. */
  merge(other: LatencyHistogram): void {
    if (other.bounds.length !== this.bounds.length || other.bounds.some((b, i) => b !== this.bounds[i])) {
      throw new RangeError("cannot merge histograms with different bucket bounds");
    }
    other.#counts.forEach((n, i) => {
      this.#counts[i]! += n;
    });
    this.#count += other.#count;
    this.#sum += other.#sum;
  }

  toJSON(): LatencyHistogramJSON {
    const cumulative = this.cumulative();
    return {
      le: [...this.bounds],
      buckets: cumulative.slice(0, -1).map((b) => b.count),
      count: this.#count,
      sum: this.#sum,
    };
  }

  /** Reads toJSON's output back; throws a RangeError on anything that is not a consistent histogram. */
  static fromJSON(json: unknown): LatencyHistogram {
    const value = json as Partial<LatencyHistogramJSON> | null;
    if (
      typeof value !== "object" ||
      value === null ||
      !Array.isArray(value.le) ||
      !Array.isArray(value.buckets)
    ) {
      throw new RangeError("not a latency histogram: le and buckets must be arrays");
    }
    const { le, buckets, count, sum } = value;
    if (le.some((b) => typeof b !== "number")) throw new RangeError("histogram bounds must be numbers");
    if (buckets.length !== le.length) throw new RangeError("histogram needs one bucket count per bound");
    if (!isCount(count) || typeof sum !== "number" || !Number.isFinite(sum) || sum < 0) {
      throw new RangeError("histogram count must be a whole number and sum a finite number >= 0");
    }
    const histogram = new LatencyHistogram(
      le.length === PROBE_LATENCY_BUCKETS.length && le.every((b, i) => b === PROBE_LATENCY_BUCKETS[i])
        ? PROBE_LATENCY_BUCKETS
        : le,
    );
    let previous = 0;
    buckets.forEach((cumulative, i) => {
      if (!isCount(cumulative) || cumulative < previous || cumulative > count) {
        throw new RangeError("histogram buckets must be cumulative whole numbers no larger than count");
      }
      histogram.#counts[i] = cumulative - previous;
      previous = cumulative;
    });
    histogram.#count = count;
    histogram.#sum = sum;
    return histogram;
  }
}

/** The latencies of one operation kind on one mount, across probe runs. */
export interface ProbeLatencySeries {
  /** Whatever names the mount for the caller (its mount point, a store role). */
  mount: string;
  op: ProbeOpKind;
  /** Operations that succeeded, by their time inside the probe child. */
  histogram: LatencyHistogram;
  /** Operations that failed (ENOTCONN, ENOENT, ...): counted, not timed, as a dead mount answers fast. */
  errors: number;
  /** Operations the deadline cut off: no latency is known, only that it was longer than the deadline. */
  timeouts: number;
}

export interface ProbeLatencySeriesJSON {
  mount: string;
  op: ProbeOpKind;
  histogram: LatencyHistogramJSON;
  errors: number;
  timeouts: number;
}

const OP_KINDS: readonly ProbeOpKind[] = ["statfs", "readdir", "stat", "read"];

/** Probe latencies per (mount, operation): what a metrics exporter turns into one histogram family. */
export class ProbeLatencies {
  readonly bounds: readonly number[];
  readonly #series = new Map<string, ProbeLatencySeries>();

  constructor(bounds: readonly number[] = PROBE_LATENCY_BUCKETS) {
    checkBounds(bounds);
    this.bounds = bounds;
  }

  /** The series of (mount, op), created empty on first use. */
  series(mount: string, op: ProbeOpKind): ProbeLatencySeries {
    const key = JSON.stringify([mount, op]);
    let found = this.#series.get(key);
    if (!found) {
      found = { mount, op, histogram: new LatencyHistogram(this.bounds), errors: 0, timeouts: 0 };
      this.#series.set(key, found);
    }
    return found;
  }

  /**
   * Records one probe run of a mount: each finished operation's time (seconds) in its histogram,
   * each failed one as an error, the one the deadline cut off as a timeout. Operations the run
   * never reached (after the hung one, or after a crash) are not recorded.
   */
  record(mount: string, run: ProbeRun): void {
    for (const result of run.results) {
      const series = this.series(mount, result.op);
      if (result.ok) series.histogram.observe(result.ms / 1000);
      else series.errors += 1;
    }
    if (run.hungAt) this.series(mount, run.hungAt.op).timeouts += 1;
  }

  /** Every series, sorted by mount then operation. */
  all(): ProbeLatencySeries[] {
    return [...this.#series.values()].sort((a, b) =>
      a.mount === b.mount ? OP_KINDS.indexOf(a.op) - OP_KINDS.indexOf(b.op) : a.mount < b.mount ? -1 : 1,
    );
  }

  toJSON(): ProbeLatencySeriesJSON[] {
    return this.all().map((s) => ({
      mount: s.mount,
      op: s.op,
      histogram: s.histogram.toJSON(),
      errors: s.errors,
      timeouts: s.timeouts,
    }));
  }

  static fromJSON(json: unknown): ProbeLatencies {
    if (!Array.isArray(json)) throw new RangeError("probe latencies must be an array of series");
    const parsed = (json as Partial<ProbeLatencySeriesJSON>[]).map((entry) => {
      if (typeof entry?.mount !== "string" || !OP_KINDS.includes(entry.op as ProbeOpKind)) {
        throw new RangeError("a probe latency series needs a mount and a known op");
      }
      if (!isCount(entry.errors) || !isCount(entry.timeouts)) {
        throw new RangeError("probe latency errors and timeouts must be whole numbers");
      }
      const histogram = LatencyHistogram.fromJSON(entry.histogram);
      return {
        mount: entry.mount,
        op: entry.op as ProbeOpKind,
        histogram,
        errors: entry.errors,
        timeouts: entry.timeouts,
      };
    });
    // Every series shares the bounds of the first; merge() rejects any that differ.
    const latencies = new ProbeLatencies(parsed[0]?.histogram.bounds ?? PROBE_LATENCY_BUCKETS);
    for (const entry of parsed) {
      const series = latencies.series(entry.mount, entry.op);
      series.histogram.merge(entry.histogram);
      series.errors += entry.errors;
      series.timeouts += entry.timeouts;
    }
    return latencies;
  }
}

/** Records a probe run of `mount` into `latencies` (a function for callers that keep one set per collection). */
export function recordProbeRun(latencies: ProbeLatencies, mount: string, run: ProbeRun): void {
  latencies.record(mount, run);
}
