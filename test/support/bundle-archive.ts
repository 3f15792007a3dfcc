import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import tar from "tar-stream";

/** One entry of an extracted bundle. */
export interface ExtractedEntry {
  name: string;
  type: string;
  data: Buffer;
}

/** Reads a .tar.gz (a file or its bytes) with tar-stream, every entry in archive order, in memory. */
export async function extractBundle(
  source: string | Buffer,
): Promise<{ entries: ExtractedEntry[]; tar: Buffer }> {
  const gz = typeof source === "string" ? await readFile(source) : source;
  const raw = gunzipSync(gz);
  const extract = tar.extract();
  const entries: ExtractedEntry[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        entries.push({ name: header.name, type: header.type ?? "file", data: Buffer.concat(chunks) });
        next();
      });
      stream.on("error", reject);
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  extract.end(raw);
  await done;
  return { entries, tar: raw };
}

export interface BundleView {
  top: string;
  names: string[];
  /** Entries by path inside the top directory. */
  files: Map<string, Buffer>;
  text(name: string): string;
  json<T = unknown>(name: string): T;
  manifest: Manifest;
}

export interface ManifestItem {
  path: string | null;
  source: string | string[];
  status: "ok" | "error" | "timeout" | "skipped";
  durationMs: number;
  bytes: number;
  sha256: string | null;
  truncated?: boolean;
  redactions: { rule: string; count: number }[];
  error?: string;
}

export interface Manifest {
  node: string;
  top: string;
  capped: boolean;
  steps: { name: string; status: string; durationMs: number; items: number; error?: string }[];
  items: ManifestItem[];
}

/** The bundle's entries under its one top directory, with the manifest parsed. */
export type OpenedBundle = BundleView & { entries: ExtractedEntry[]; tar: Buffer };

export async function openBundle(source: string | Buffer): Promise<OpenedBundle> {
  const { entries, tar: raw } = await extractBundle(source);
  const top = entries[0]!.name.replace(/\/$/, "");
  const files = new Map<string, Buffer>();
  const names: string[] = [];
  for (const entry of entries.slice(1)) {
    if (!entry.name.startsWith(`${top}/`)) throw new Error(`entry ${entry.name} is outside ${top}/`);
    const name = entry.name.slice(top.length + 1);
    names.push(name);
    files.set(name, entry.data);
  }
  const text = (name: string) => {
    const data = files.get(name);
    if (!data) throw new Error(`no ${name} in the bundle`);
    return data.toString("utf8");
  };
  const json = <T>(name: string) => JSON.parse(text(name)) as T;
  return { top, names, files, text, json, manifest: json<Manifest>("manifest.json"), entries, tar: raw };
}
