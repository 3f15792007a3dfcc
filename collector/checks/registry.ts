import { describeError } from "../host/root.js";
import { byCodePoint } from "../model/order.js";
import type { Snapshot } from "../snapshot.js";
import { collectionChecks } from "./collection.js";
import { configChecks } from "./config.js";
import { evictionChecks } from "./eviction.js";
import {
  type CheckDefinition,
  type CheckOptions,
  DEFAULT_CHECK_OPTIONS,
  type Finding,
  runbookLink,
  severityRank,
} from "./finding.js";
import { imageChecks } from "./images.js";
import { lazyPullChecks } from "./lazypull.js";
import { pressureChecks } from "./pressure.js";
import { rootModelChecks } from "./rootmodel.js";
import { runtimeChecks } from "./runtime.js";
import { selinuxChecks } from "./selinux.js";
import { splitfsChecks } from "./splitfs.js";
import { storeChecks } from "./stores.js";

/** Reported when a check itself throws: one broken check must not hide the others' findings. */
export const CHECK_FAILED: Omit<CheckDefinition, "run"> = {
  id: "CHECK_FAILED",
  severity: "warning",
  title: "A check failed while judging the snapshot",
  area: "collection",
  description:
    "A check threw an error, most likely on facts of a shape it did not expect (an old or hand-edited snapshot). " +
    "Its findings are missing; the other checks ran.",
  confirm: ["imagefs-doctor diagnose --json | jq '.findings[] | select(.id == \"CHECK_FAILED\")'"],
};

/** Every check, grouped by area; the findings catalog in docs/ is generated from this list. */
export const CHECKS: CheckDefinition[] = [
  ...splitfsChecks,
  ...evictionChecks,
  ...pressureChecks,
  ...runtimeChecks,
  ...imageChecks,
  ...storeChecks,
  ...selinuxChecks,
  ...lazyPullChecks,
  ...rootModelChecks,
  ...configChecks,
  ...collectionChecks,
];

/** Runs every check; findings come back ordered by severity, then id. Checks do no I/O. */
export function runChecks(snapshot: Snapshot, options: CheckOptions = DEFAULT_CHECK_OPTIONS): Finding[] {
  const findings: Finding[] = [];
  for (const check of CHECKS) {
    try {
      for (const draft of check.run(snapshot, options)) {
        findings.push({
          id: check.id,
          severity: draft.severity ?? check.severity,
          title: draft.title ?? check.title,
          ...(draft.subject !== undefined ? { subject: draft.subject } : {}),
          evidence: draft.evidence,
          remediation: draft.remediation,
          runbook: runbookLink(check.id),
        });
      }
    } catch (error) {
      findings.push({
        id: CHECK_FAILED.id,
        severity: CHECK_FAILED.severity,
        title: `${CHECK_FAILED.title}: ${check.id}`,
        subject: check.id,
        evidence: [`${check.id} threw: ${describeError(error)}`],
        remediation: {
          summary: "Report this with the snapshot attached (imagefs-doctor collect --json).",
          commands: ["imagefs-doctor collect --json --out snapshot.json"],
        },
        runbook: runbookLink(CHECK_FAILED.id),
      });
    }
  }
  return findings.sort(
    (a, b) => severityRank(b.severity) - severityRank(a.severity) || byCodePoint(a.id, b.id),
  );
}
