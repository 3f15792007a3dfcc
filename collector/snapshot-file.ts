import { readFile } from "node:fs/promises";
import { describeError } from "./host/root.js";
import { SCHEMA_VERSION, type Snapshot, SOURCE_NAMES } from "./snapshot.js";

const STATUSES = ["ok", "error", "timeout", "absent"];

export class SnapshotError extends Error {}

/**
 * Reads a snapshot written by `collect --json` (or taken from a support bundle). The frame must
 * be right; a source that is missing or malformed becomes an "error" source, so the diagnosis
 * still runs and SOURCE_FAILED names the gap instead of the whole file being refused.
 */
export async function readSnapshot(file: string): Promise<Snapshot> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new SnapshotError(`cannot read snapshot ${file}: ${describeError(error)}`);
  }
  return parseSnapshot(text, file);
}

export function parseSnapshot(text: string, file = "snapshot"): Snapshot {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new SnapshotError(`${file} is not valid JSON: ${describeError(error)}`);
  }
  if (!isObject(data)) throw new SnapshotError(`${file} is not a snapshot: expected a JSON object`);
  // `diagnose --json` output carries the snapshot inside it; accept that too.
  if (isObject(data.snapshot) && Array.isArray(data.findings)) data = data.snapshot;
  const snapshot = data as Record<string, unknown>;
  if (snapshot.schemaVersion !== SCHEMA_VERSION) {
    throw new SnapshotError(
      `${file} has schemaVersion ${JSON.stringify(snapshot.schemaVersion)}; this imagefs-doctor reads version ${SCHEMA_VERSION}`,
    );
  }
  if (!isObject(snapshot.sources)) throw new SnapshotError(`${file} has no "sources" object`);
  const sources = snapshot.sources as Record<string, unknown>;
  for (const name of SOURCE_NAMES) {
    const result = sources[name];
    if (result === undefined) {
      // Snapshots from an older imagefs-doctor lack the sources added since.
      sources[name] = {
        status: "absent",
        durationMs: 0,
        reason: `not in ${file} (taken by an older version)`,
        facts: null,
      };
      continue;
    }
    const valid =
      isObject(result) &&
      STATUSES.includes(result.status as string) &&
      (result.status !== "ok" || isObject(result.facts));
    if (!valid)
      sources[name] = { status: "error", durationMs: 0, error: `malformed in ${file}`, facts: null };
  }
  return {
    ...(snapshot as unknown as Snapshot),
    node: typeof snapshot.node === "string" ? snapshot.node : "unknown",
    collectedAt: typeof snapshot.collectedAt === "string" ? snapshot.collectedAt : "unknown",
    tool: isObject(snapshot.tool)
      ? (snapshot.tool as Snapshot["tool"])
      : { name: "unknown", version: "unknown" },
    host: isObject(snapshot.host) ? (snapshot.host as Snapshot["host"]) : { root: "unknown" },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
