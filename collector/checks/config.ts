import { kubeletFacts, runtimeService, storageFacts } from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { ConfigFileFact } from "../sources/config-files.js";
import type { CheckDefinition, FindingDraft } from "./finding.js";

/** Which service reads a kind of file, so the remediation restarts the right one. */
function consumer(snapshot: Snapshot, file: ConfigFileFact): string {
  if (file.kind.startsWith("kubelet")) return "kubelet";
  if (file.kind.startsWith("containerd")) return "containerd";
  if (file.kind.startsWith("crio")) return "crio";
  return runtimeService(snapshot);
}

function location(file: ConfigFileFact): string {
  if (file.error?.line === undefined) return file.path;
  return `${file.path}:${file.error.line}${file.error.column !== undefined ? `:${file.error.column}` : ""}`;
}

const configParseError: CheckDefinition = {
  id: "CONFIG_PARSE_ERROR",
  severity: "critical",
  title: "A configuration file cannot be read or parsed",
  area: "configuration",
  description:
    "A storage, runtime, registries or kubelet configuration file is malformed or unreadable, or is a kubelet " +
    "drop-in the kubelet refuses (no apiVersion/kind, or not a KubeletConfiguration). The program that reads it " +
    "refuses to start (CRI-O, the kubelet) or silently falls back to defaults, and this diagnosis cannot see the " +
    "settings in it.",
  confirm: [
    "crio config >/dev/null   # CRI-O parses its configuration and reports the first error",
    "journalctl -u kubelet -b | grep -iE 'failed to load kubelet (config|dropin)'",
  ],
  run(snapshot) {
    const files = [...(storageFacts(snapshot)?.files ?? []), ...(kubeletFacts(snapshot)?.files ?? [])];
    const drafts: FindingDraft[] = [];
    for (const file of files) {
      if (file.status === "error") {
        const service = consumer(snapshot, file);
        drafts.push({
          subject: file.path,
          title: `${file.path} cannot be ${file.format ? "parsed" : "read"}`,
          evidence: [
            `${location(file)}: ${file.error?.message ?? "unknown error"}`,
            `read by: ${service} (${file.kind})`,
          ],
          remediation: {
            summary: `Fix ${file.path}${file.error?.line ? ` at line ${file.error.line}` : ""}, then restart ${service}.`,
            commands: [
              `sed -n '${Math.max((file.error?.line ?? 1) - 3, 1)},${(file.error?.line ?? 1) + 3}p' ${file.path}`,
              `systemctl restart ${service}`,
              `systemctl status ${service}`,
            ],
          },
        });
      } else if (file.truncated) {
        drafts.push({
          severity: "warning",
          subject: file.path,
          title: `${file.path} is too large to read whole`,
          evidence: [`${file.path} is larger than the reading limit; settings past the cut were not seen`],
          remediation: { summary: "Check why the file is so large.", commands: [`ls -l ${file.path}`] },
        });
      }
    }
    return drafts;
  },
};

export const configChecks: CheckDefinition[] = [configParseError];
