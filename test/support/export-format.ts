/**
 * journald's export format (https://systemd.io/JOURNAL_EXPORT_FORMATS/), the input of
 * `systemd-journal-remote`: one "NAME=value\n" line per field; a value that is not text or holds
 * a newline as "NAME\n", its length as a little-endian 64-bit number, the bytes and "\n"; an empty
 * line after each entry. Entries carry __REALTIME_TIMESTAMP and __MONOTONIC_TIMESTAMP (µs) and
 * _BOOT_ID. The tests and the benchmark write real journal files from it.
 */

export type ExportValue = string | Uint8Array;

export interface ExportEntry {
  realtimeUsec: number;
  monotonicUsec: number;
  bootId: string;
  /** Fields in order; a name may repeat (journald keeps both values). */
  fields: [name: string, value: ExportValue][];
}

function binaryField(name: string, bytes: Uint8Array): Buffer {
  const head = Buffer.from(`${name}\n`, "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(bytes.length));
  return Buffer.concat([head, length, bytes, Buffer.from("\n")]);
}

/** One entry in export format, the separating empty line included. */
export function exportEntry(entry: ExportEntry): Buffer {
  const parts: Buffer[] = [
    Buffer.from(
      `__REALTIME_TIMESTAMP=${entry.realtimeUsec}\n__MONOTONIC_TIMESTAMP=${entry.monotonicUsec}\n_BOOT_ID=${entry.bootId}\n`,
    ),
  ];
  let text = "";
  for (const [name, value] of entry.fields) {
    if (typeof value === "string" && !value.includes("\n")) {
      text += `${name}=${value}\n`;
      continue;
    }
    if (text !== "") parts.push(Buffer.from(text, "utf8"));
    text = "";
    const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    parts.push(binaryField(name, bytes));
  }
  parts.push(Buffer.from(`${text}\n`, "utf8"));
  return Buffer.concat(parts);
}
