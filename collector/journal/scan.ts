import type { MatchTerm } from "./session.js";

/**
 * Filters tested on each entry's own fields, instead of libsystemd's matches.
 *
 * libsystemd looks every match up again on each step: a hash lookup of "FIELD=value", then a
 * bisection of that value's entry array, per match. A must-gather pass has 19 matches (the packs'
 * and the excerpts' filters), and stepping through the bench's 24 h window with them takes 89 ms
 * against 19 ms stepping over every entry. When nearly every entry matches, as there, reading
 * each entry and testing its fields here costs less. When few do, the matches skip the rest
 * unread: the reader tests the first entries here, and gives the filters to libsystemd as soon
 * as too few of them match (FilterScan.sparse).
 *
 * A filter value is matched as libsystemd matches it: byte for byte, "FIELD=value" against the
 * whole field, any of the entry's occurrences of a field. Each distinct "FIELD=value" is one bit;
 * a filter holds when, for each of its fields, the entry has one of that field's bits.
 */
export class FilterScan {
  /** "FIELD=value" as latin1 text (one character per byte) -> its bit. */
  readonly #bits = new Map<string, number>();
  /** FIELD -> value (as text) -> its bit. */
  readonly #byField = new Map<string, Map<string, number>>();
  /** Per filter, per field, the bits of that field's values. */
  readonly #filters: number[][];
  /** The longest "FIELD=value" in bytes: a longer field is none of them. */
  readonly maxKeyBytes: number;
  /** Names of the fields the filters look at. */
  readonly fields: ReadonlySet<string>;
  /** Entries tested since the last look at the share that matched, and how many matched. */
  #tested = 0;
  #matched = 0;
  /**
   * True once too few of the entries last tested matched for testing them here to pay: an entry
   * that does not match costs about what stepping to a matching one with libsystemd's matches
   * costs. The share is looked at every PROBE_ENTRIES entries, so that a journal that turns
   * sparse part way is noticed as soon.
   */
  sparse = false;

  private constructor(terms: MatchTerm[]) {
    const fields = new Set<string>();
    let maxKeyBytes = 0;
    this.#filters = terms.map((term) =>
      term.map(([field, values]) => {
        fields.add(field);
        let group = 0;
        for (const value of values) {
          const key = Buffer.from(`${field}=${value}`, "utf8");
          maxKeyBytes = Math.max(maxKeyBytes, key.length);
          const text = key.toString("latin1");
          let bit = this.#bits.get(text);
          if (bit === undefined) {
            bit = 1 << this.#bits.size;
            this.#bits.set(text, bit);
            const values = this.#byField.get(field) ?? new Map<string, number>();
            values.set(value, bit);
            this.#byField.set(field, values);
          }
          group |= bit;
        }
        return group;
      }),
    );
    this.fields = fields;
    this.maxKeyBytes = maxKeyBytes;
  }

  /**
   * The scan for these filters, or null when libsystemd's matches are to be used from the start:
   * no filters, more distinct values than bits, or a value longer than the reader decodes.
   */
  static of(terms: MatchTerm[], maxKeyBytes: number): FilterScan | null {
    if (terms.length === 0) return null;
    const keys = new Set(
      terms.flatMap((term) => term.flatMap(([field, values]) => values.map((v) => `${field}=${v}`))),
    );
    if (keys.size > MAX_BITS) return null;
    const scan = new FilterScan(terms);
    return scan.maxKeyBytes <= maxKeyBytes ? scan : null;
  }

  /** The bit of the field whose bytes ("FIELD=value") are buf[start, end), or 0. */
  bitOf(buf: Buffer, start: number, end: number): number {
    if (end - start > this.maxKeyBytes) return 0;
    return (
      this.#bits.get(
        (buf as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(start, end),
      ) ?? 0
    );
  }

  /**
   * The bit of a field whose value decoded as valid UTF-8 to `text`: the same as bitOf gives for
   * its bytes (valid UTF-8 decodes to one text only), without making a string of them.
   */
  bitFor(field: string, text: string): number {
    return this.#byField.get(field)?.get(text) ?? 0;
  }

  /** Whether an entry with these bits passes the filters (OR of filters, AND of their fields). */
  passes(bits: number): boolean {
    for (const filter of this.#filters) {
      let all = true;
      for (const group of filter) {
        if ((bits & group) === 0) {
          all = false;
          break;
        }
      }
      if (all) return true;
    }
    return false;
  }

  /** Counts a tested entry. */
  count(matched: boolean): void {
    this.#tested += 1;
    if (matched) this.#matched += 1;
    if (this.#tested < PROBE_ENTRIES) return;
    this.sparse = this.#matched < this.#tested * MIN_MATCHING_SHARE;
    this.#tested = 0;
    this.#matched = 0;
  }
}

/** Bits of a number that `|` and `&` keep. */
const MAX_BITS = 31;
const PROBE_ENTRIES = 512;
const MIN_MATCHING_SHARE = 0.5;
