/**
 * The lines of a text that contain one of `needles`, in the text's order, each once: what
 * `text.split("\n").filter((line) => needles.some((n) => line.includes(n)))` gives, without
 * splitting the whole text. A log of 100,000 lines in which a few hundred matter is searched for
 * its needles (indexOf, which V8 does quickly), and only the lines around the hits are cut out.
 * `skipFirst` leaves out the text's first line (a tail read that began inside a line).
 *
 * The text may also be UTF-8 bytes, of which only the lines found are decoded: the same lines as
 * from the decoded text (an ASCII needle or newline is never part of another character's bytes,
 * and a bad byte is replaced the same way within its line).
 */
export function linesContaining(
  text: string | Buffer,
  needles: readonly string[],
  skipFirst = false,
): string[] {
  const starts: number[] = [];
  const ends = new Map<number, number>();
  for (const needle of needles) {
    if (needle === "" || needle.includes("\n"))
      throw new TypeError("linesContaining: a needle is a non-empty text within a line");
    // The needle's length where it is searched: characters in a text, bytes in a Buffer.
    const length = typeof text === "string" ? needle.length : Buffer.byteLength(needle);
    let at = text.indexOf(needle);
    while (at >= 0) {
      // (Buffer.lastIndexOf takes a negative offset from the end.)
      const start = at === 0 ? 0 : text.lastIndexOf("\n", at - 1) + 1;
      let end = text.indexOf("\n", at + length);
      if (end < 0) end = text.length;
      if (!ends.has(start)) {
        ends.set(start, end);
        starts.push(start);
      }
      at = end >= text.length ? -1 : text.indexOf(needle, end + 1);
    }
  }
  if (needles.length > 1) starts.sort((a, b) => a - b);
  const lines: string[] = [];
  for (const start of starts) {
    if (skipFirst && start === 0) continue;
    const end = ends.get(start);
    lines.push(typeof text === "string" ? text.slice(start, end) : text.toString("utf8", start, end));
  }
  return lines;
}
