import type { SourceName } from "../snapshot.js";
import type { CheckDefinition } from "./finding.js";

const sourceFailed: CheckDefinition = {
  id: "SOURCE_FAILED",
  severity: "warning",
  title: "Part of the node could not be examined",
  area: "collection",
  description:
    "A source failed or ran past its deadline, so the findings that depend on it are missing. The rest of the " +
    "diagnosis still holds; this finding keeps the gap from passing for a clean bill of health.",
  confirm: ["imagefs-doctor collect --json | jq '.sources | map_values(.status)'"],
  run(snapshot) {
    return (Object.keys(snapshot.sources) as SourceName[]).flatMap((name) => {
      const result = snapshot.sources[name];
      if (result.status !== "error" && result.status !== "timeout") return [];
      return [
        {
          subject: name,
          title: `The ${name} source ${result.status === "timeout" ? "timed out" : "failed"}`,
          evidence: [`${name}: ${result.status} after ${result.durationMs} ms: ${result.error}`],
          remediation: {
            summary:
              "Run the collection again with --json to see the raw facts; a timeout often means a hung mount.",
            commands: ["imagefs-doctor collect --json", "findmnt -t fuse,nfs,nfs4,cifs"],
          },
        },
      ];
    });
  },
};

export const collectionChecks: CheckDefinition[] = [sourceFailed];
