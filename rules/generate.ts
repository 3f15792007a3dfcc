/**
 * Writes rules/<area>.yaml (what promtool checks and tests) and deploy/prometheusrule.yaml (the same
 * groups as a PrometheusRule) from rules/alerts.ts. `--check` compares instead of writing and exits
 * 1 when a file is stale (CI runs this).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Document, isMap, isSeq, stringify } from "yaml";
import { type AlertRule, RULE_FILES, RUNBOOK_BASE, type RuleFile } from "./alerts.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const MANIFEST = "deploy/prometheusrule.yaml";

const HEADER = "Generated from rules/alerts.ts by `npm run rules`; do not edit by hand.";
const YAML_OPTIONS = { lineWidth: 0, blockQuote: "literal" } as const;

/** One rule as Prometheus reads it. */
export function promRule(rule: AlertRule) {
  return {
    alert: rule.alert,
    expr: rule.expr,
    for: rule.for,
    labels: { severity: rule.severity },
    annotations: {
      summary: rule.summary,
      description: rule.description,
      runbook_url: `${RUNBOOK_BASE}${rule.alert}.md`,
    },
  };
}

function group(file: RuleFile) {
  return { name: file.group, rules: file.rules.map(promRule) };
}

function renderRuleFile(file: RuleFile): string {
  const doc = new Document({ groups: [group(file)] });
  doc.commentBefore = ` ${HEADER}\n Rationale and thresholds: see the comments below and CONFIG in rules/alerts.ts.`;
  const rules = doc.getIn(["groups", 0, "rules"]);
  if (isSeq(rules)) {
    rules.items.forEach((item, i) => {
      const why = file.rules[i]?.why;
      if (why && isMap(item)) item.commentBefore = why.replace(/^/gm, " ");
    });
  }
  return doc.toString(YAML_OPTIONS);
}

function renderManifest(): string {
  const manifest = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: "imagefs-doctor",
      namespace: "imagefs-doctor",
      labels: { "app.kubernetes.io/name": "imagefs-doctor" },
    },
    spec: { groups: RULE_FILES.map(group) },
  };
  return `# ${HEADER}\n${stringify(manifest, YAML_OPTIONS)}`;
}

/** Every generated file, relative to the repository root, with its content. */
export function renderAll(): [string, string][] {
  return [
    ...RULE_FILES.map((file): [string, string] => [`rules/${file.file}`, renderRuleFile(file)]),
    [MANIFEST, renderManifest()],
  ];
}

async function main(): Promise<void> {
  const outputs = renderAll();
  if (process.argv.includes("--check")) {
    let stale = false;
    for (const [file, text] of outputs) {
      if ((await readFile(path.join(ROOT, file), "utf8").catch(() => "")) !== text) {
        process.stderr.write(`${file} is out of date: run \`npm run rules\` and commit the result\n`);
        stale = true;
      }
    }
    if (stale) process.exit(1);
    return;
  }
  for (const [file, text] of outputs) {
    await mkdir(path.dirname(path.join(ROOT, file)), { recursive: true });
    await writeFile(path.join(ROOT, file), text);
    process.stdout.write(`wrote ${file}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
