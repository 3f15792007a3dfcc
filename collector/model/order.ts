/**
 * Orders strings by UTF-16 code unit, as `sort()` does: the same order on every machine and
 * locale. Not localeCompare, which also loads ICU's collation data into a long-running exporter.
 */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
