/**
 * Parses `crictl imagefsinfo -o json` in both shapes crictl has printed:
 * - v1.29 and later: one document {"status": {"imageFilesystems": [...], "containerFilesystems": [...]}}
 * - v1.28 and earlier: one document {"status": <FilesystemUsage>} per image filesystem, back to back.
 * In both, 64-bit numbers are JSON strings (the proto3 JSON mapping), e.g. "usedBytes": {"value": "123"}.
 */
export interface CriFsUsage {
  mountpoint: string;
  usedBytes: number | null;
  inodesUsed: number | null;
  /** Nanoseconds since the epoch, as a decimal string (it does not fit a double). */
  timestamp: string;
}

export interface ImageFsInfo {
  imageFilesystems: CriFsUsage[];
  containerFilesystems: CriFsUsage[];
}

export function parseCrictlImageFsInfo(output: string): ImageFsInfo {
  const documents = splitJsonDocuments(output).map((text) => JSON.parse(text) as { status?: unknown });
  if (documents.length === 0) throw new Error("crictl printed no JSON");
  const statuses = documents.map((doc) => doc.status);
  const first = statuses[0] as Record<string, unknown> | undefined;
  if (first && ("imageFilesystems" in first || "containerFilesystems" in first)) {
    return {
      imageFilesystems: asArray(first.imageFilesystems).map(toUsage),
      containerFilesystems: asArray(first.containerFilesystems).map(toUsage),
    };
  }
  return { imageFilesystems: statuses.map(toUsage), containerFilesystems: [] };
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function toUsage(raw: unknown): CriFsUsage {
  const item = (raw ?? {}) as Record<string, unknown>;
  const fsId = (item.fsId ?? item.fs_id ?? {}) as Record<string, unknown>;
  return {
    mountpoint: String(fsId.mountpoint ?? ""),
    usedBytes: uint64(item.usedBytes ?? item.used_bytes),
    inodesUsed: uint64(item.inodesUsed ?? item.inodes_used),
    timestamp: String(item.timestamp ?? "0"),
  };
}

function uint64(wrapper: unknown): number | null {
  if (wrapper === null || wrapper === undefined) return null;
  const value = typeof wrapper === "object" ? (wrapper as { value?: unknown }).value : wrapper;
  if (value === undefined || value === null) return 0; // proto3 omits zero values
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/** Splits concatenated JSON documents ("{...}\n{...}") by tracking brace depth outside strings. */
export function splitJsonDocuments(text: string): string[] {
  const documents: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (inString) {
      if (char === "\\") i++;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') inString = true;
    else if (char === "{" || char === "[") {
      if (depth === 0) start = i;
      depth++;
    } else if (char === "}" || char === "]") {
      depth--;
      if (depth === 0 && start >= 0) {
        documents.push(text.slice(start, i + 1));
        start = -1;
      }
      if (depth < 0) throw new Error(`unbalanced JSON at offset ${i}`);
    }
  }
  if (depth !== 0) throw new Error("truncated JSON: a document is not closed");
  return documents;
}
