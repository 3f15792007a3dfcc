/**
 * Writes docs/findings.md from the check registry, so the catalog cannot drift from the code.
 * `--check` compares instead of writing and exits 1 when the file is stale (CI runs this).
 */
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { CheckDefinition } from "../collector/checks/finding.js";
import { CHECK_FAILED, CHECKS } from "../collector/checks/registry.js";

const TARGET = fileURLToPath(new URL("./findings.md", import.meta.url));

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

async function main(): Promise<void> {
  const catalog = renderCatalog();
  if (process.argv.includes("--check")) {
    const current = await readFile(TARGET, "utf8").catch(() => "");
    if (current !== catalog) {
      process.stderr.write("docs/findings.md is out of date: run `npm run docs` and commit the result\n");
      process.exit(1);
    }
    return;
  }
  await writeFile(TARGET, catalog);
  process.stdout.write(`wrote ${TARGET}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
