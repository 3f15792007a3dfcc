/**
 * Writes docs/findings.md from the check registry, so the catalog cannot drift from the code.
 * `--check` compares instead of writing and exits 1 when the file is stale (CI runs this).
 */
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { CheckDefinition } from "../collector/checks/finding.js";
import { CHECK_FAILED, CHECKS } from "../collector/checks/registry.js";
import { METRICS } from "../collector/export/catalog.js";

const FINDINGS = fileURLToPath(new URL("./findings.md", import.meta.url));
const METRICS_DOC = fileURLToPath(new URL("./metrics.md", import.meta.url));

type CatalogEntry = Omit<CheckDefinition, "run">;

function entry(check: CatalogEntry): string {
  return [
    `### ${check.id}`,
    "",
    `**${check.severity}** · ${check.area} · ${check.title}`,
    "",
    check.description,
    "",
    "How to confirm on the node:",
    "",
    "```sh",
    ...check.confirm,
    "```",
    "",
    "Each finding carries the evidence from the node and the remediation commands for its own paths.",
    "",
  ].join("\n");
}

export function renderCatalog(): string {
  const checks: CatalogEntry[] = [...CHECKS, CHECK_FAILED];
  const areas = [...new Set(checks.map((c) => c.area))];
  const lines = [
    "# Findings catalog",
    "",
    "Generated from `collector/checks/registry.ts` by `npm run docs`; do not edit by hand.",
    "Every finding links here as its runbook (`docs/findings.md#<id in lower case>`).",
    "",
    "| id | severity | area |",
    "| --- | --- | --- |",
    ...checks.map((c) => `| [${c.id}](#${c.id.toLowerCase()}) | ${c.severity} | ${c.area} |`),
    "",
  ];
  for (const area of areas) {
    lines.push(`## ${area[0]!.toUpperCase()}${area.slice(1)}`, "");
    for (const check of checks.filter((c) => c.area === area)) lines.push(entry(check));
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

export function renderMetrics(): string {
  const lines = [
    "# Metrics catalog",
    "",
    "Generated from `collector/export/catalog.ts` by `npm run docs`; do not edit by hand.",
    "`imagefs-doctor serve` exports these on `/metrics` (and over OTLP with `--otlp-endpoint`).",
    "Every series also has the label `node`. Label values are bounded: roles, ordinals (`store`),",
    "SELinux types, reasons — never a path or an image reference.",
    "",
    "| metric | type | labels | meaning |",
    "| --- | --- | --- | --- |",
    ...METRICS.map(
      (m) =>
        `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(", ") || "—"} | ${m.help} |`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const outputs: [string, string][] = [
    [FINDINGS, renderCatalog()],
    [METRICS_DOC, renderMetrics()],
  ];
  if (process.argv.includes("--check")) {
    for (const [file, text] of outputs) {
      if ((await readFile(file, "utf8").catch(() => "")) !== text) {
        process.stderr.write(`${file} is out of date: run \`npm run docs\` and commit the result\n`);
        process.exit(1);
      }
    }
    return;
  }
  for (const [file, text] of outputs) {
    await writeFile(file, text);
    process.stdout.write(`wrote ${file}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
