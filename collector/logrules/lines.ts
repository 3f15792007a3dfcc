/**
 * The lines of a text that contain one of `needles`, in the text's order, each once: what
 * `text.split("\n").filter((line) => needles.some((n) => line.includes(n)))` gives, without
 * splitting the whole text. A log of 100,000 lines in which a few hundred matter is searched for
 * its needles (indexOf, which V8 does quickly), and only the lines around the hits are cut out.
 * `skipFirst` leaves out the text's first line (a tail read that began inside a line).
 */
export function linesContaining(text: string, needles: readonly string[], skipFirst = false): string[] {
  const starts: number[] = [];
  const ends = new Map<number, number>();
  for (const needle of needles) {
    if (needle === "" || needle.includes("\n"))
      throw new TypeError("linesContaining: a needle is a non-empty text within a line");
    let at = text.indexOf(needle);
    while (at >= 0) {
      const start = text.lastIndexOf("\n", at - 1) + 1;
      let end = text.indexOf("\n", at + needle.length);
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
    lines.push(text.slice(start, ends.get(start)));
  }
  return lines;
}
