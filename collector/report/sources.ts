import { formatBytes, formatPercent } from "../model/quantity.js";
import { filesystemFacts } from "../model/view.js";
import type { Snapshot, SourceName } from "../snapshot.js";
import { WIDTH, wrap } from "./text.js";

/** What `collect` prints without --json: each source's status and the filesystem roles found. */
export function renderSources(snapshot: Snapshot): string {
  const lines = [
    `imagefs-doctor ${snapshot.tool.version}: node ${snapshot.node}, host root ${snapshot.host.root}`,
    "",
    "sources:",
  ];
  for (const name of Object.keys(snapshot.sources) as SourceName[]) {
    const result = snapshot.sources[name];
    const detail = result.status === "absent" ? result.reason : result.status === "ok" ? "" : result.error;
    lines.push(
      ...wrap(
        `${name.padEnd(15)} ${result.status.padEnd(8)} ${String(result.durationMs).padStart(5)} ms  ${detail}`,
        WIDTH,
        "  ",
        "    ",
      ),
    );
  }
  const fs = filesystemFacts(snapshot);
  if (fs) {
    lines.push("", `filesystems (layout: ${fs.topology}):`);
    for (const role of fs.roles) {
      const where =
        role.status === "ok"
          ? `${role.mount?.source ?? "?"} ${role.mount?.fstype ?? "?"} [${role.device}]${role.mount?.readOnly ? " ro" : ""}`
          : role.status;
      const usage = role.usage
        ? `, ${formatBytes(role.usage.availableBytes)} free of ${formatBytes(role.usage.totalBytes)} (${formatPercent(role.usage.availableBytes / Math.max(role.usage.totalBytes, 1))})`
        : "";
      lines.push(...wrap(`${role.role.padEnd(12)} ${role.path}: ${where}${usage}`, WIDTH, "  ", "    "));
    }
  }
  return `${lines.join("\n")}\n`;
}
