import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { METRICS } from "../collector/export/catalog.js";
import { alertNames, RULE_FILES, RUNBOOK_BASE } from "../rules/alerts.js";
import { MANIFEST, renderAll } from "../rules/generate.js";
import { requireParts } from "./support/requirements.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNBOOKS = path.join(ROOT, "docs/runbooks");
const TESTS = path.join(ROOT, "rules/tests");

interface PromRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: string };
  annotations: Record<string, string>;
}
interface RuleGroups {
  groups: { name: string; rules: PromRule[] }[];
}
interface UnitTests {
  rule_files: string[];
  tests: {
    name: string;
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts: unknown[] }[];
  }[];
}

const ruleFilePaths = () => RULE_FILES.map((f) => path.join(ROOT, "rules", f.file));

async function testFiles(): Promise<string[]> {
  return (await readdir(TESTS))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => path.join(TESTS, f));
}

/** Prometheus durations as written in rules and unit tests: 90m, 2h55m, 1d. */
function seconds(duration: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  for (const [, n, unit] of duration.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(n) * units[unit!]!;
  return total;
}

describe("alert rules", () => {
  it("rules/*.yaml and deploy/prometheusrule.yaml are generated from rules/alerts.ts", async () => {
    for (const [file, text] of renderAll()) {
      expect(await readFile(path.join(ROOT, file), "utf8"), `${file}: run npm run rules`).toBe(text);
    }
  });

  it("the PrometheusRule carries exactly the groups of the rule files", async () => {
    const manifest = parse(await readFile(path.join(ROOT, MANIFEST), "utf8"));
    expect(manifest).toMatchObject({
      apiVersion: "monitoring.coreos.com/v1",
      kind: "PrometheusRule",
      metadata: {
        name: "imagefs-doctor",
        namespace: "imagefs-doctor",
        labels: { "app.kubernetes.io/name": "imagefs-doctor" },
      },
    });
    const groups = [];
    for (const file of ruleFilePaths())
      groups.push(...(parse(await readFile(file, "utf8")) as RuleGroups).groups);
    expect(manifest.spec.groups).toEqual(groups);
  });

  it("every rule follows the conventions: name, severity, summary, templated description, runbook_url", () => {
    for (const file of RULE_FILES) {
      for (const rule of file.rules) {
        expect(rule.alert).toMatch(/^Imagefs[A-Z][A-Za-z]+$/);
        expect(["critical", "warning", "info"]).toContain(rule.severity);
        expect(rule.summary, rule.alert).toMatch(/^[A-Za-z].*\.$/);
        expect(rule.summary, rule.alert).not.toContain("{{");
        // absent() has no labels to show: nothing exports at all.
        if (rule.alert !== "ImagefsDoctorAbsent")
          expect(rule.description, rule.alert).toContain("$labels.node");
        expect(seconds(rule.for), `${rule.alert} needs a for`).toBeGreaterThan(0);
      }
    }
  });

  it("rules use only metrics of the catalog (and Prometheus's up)", () => {
    const known = new Set<string>(["up"]);
    for (const m of METRICS) {
      known.add(m.name);
      if (m.type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) known.add(m.name + s);
    }
    for (const file of RULE_FILES) {
      for (const rule of file.rules) {
        const names = [...rule.expr.replace(/"[^"]*"/g, '""').matchAll(/\b(imagefs_[a-z_]+|up)\b/g)].map(
          (m) => m[1]!,
        );
        expect(names.length, rule.alert).toBeGreaterThan(0);
        for (const name of names) expect(known, `${rule.alert} uses ${name}`).toContain(name);
      }
    }
  });

  it("every alert has a runbook and every runbook an alert", async () => {
    const runbooks = (await readdir(RUNBOOKS))
      .filter((f) => f.endsWith(".md"))
      .map((f) => f.slice(0, -3))
      .sort();
    expect(runbooks).toEqual(alertNames().sort());
  });

  it("runbooks have Meaning, Impact, Diagnosis and Mitigation, real commands, and link their findings", async () => {
    const catalog = await readFile(path.join(ROOT, "docs/findings.md"), "utf8");
    for (const file of RULE_FILES) {
      for (const rule of file.rules) {
        const text = await readFile(path.join(RUNBOOKS, `${rule.alert}.md`), "utf8");
        expect(text, rule.alert).toMatch(new RegExp(`^# ${rule.alert}\\n`));
        const sections = [...text.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
        expect(sections, rule.alert).toEqual(["Meaning", "Impact", "Diagnosis", "Mitigation"]);
        expect(text, rule.alert).not.toMatch(/TODO|TBD|FIXME/);
        expect(text, `${rule.alert} shows commands`).toMatch(/```sh\n[\s\S]+?```/);
        for (const id of rule.findings ?? []) {
          expect(catalog, id).toContain(`### ${id}\n`);
          expect(text, `${rule.alert} links ${id}`).toContain(`../findings.md#${id.toLowerCase()})`);
        }
      }
    }
    for (const file of RULE_FILES)
      for (const rule of file.rules)
        expect(`${RUNBOOK_BASE}${rule.alert}.md`).toMatch(
          /^https:\/\/github\.com\/.+\/docs\/runbooks\/Imagefs/,
        );
  });

  it("every alert has a unit test where it goes from pending to firing, and one where it stays silent", async () => {
    const files = await testFiles();
    expect(files.map((f) => path.basename(f))).toEqual(RULE_FILES.map((f) => f.file).sort());
    const fires = new Set<string>();
    const silent = new Set<string>();
    const forOf = new Map(RULE_FILES.flatMap((f) => f.rules.map((r) => [r.alert, seconds(r.for)] as const)));
    for (const file of files) {
      const suite = parse(await readFile(file, "utf8")) as UnitTests;
      for (const test of suite.tests) {
        const cases = test.alert_rule_test ?? [];
        for (const alert of new Set(cases.map((c) => c.alertname))) {
          const mine = cases.filter((c) => c.alertname === alert);
          const firing = mine.filter((c) => c.exp_alerts.length > 0).map((c) => seconds(c.eval_time));
          const quiet = mine.filter((c) => c.exp_alerts.length === 0).map((c) => seconds(c.eval_time));
          // Pending first: silent before it fires, in the same input.
          if (firing.some((t) => quiet.some((q) => q < t))) fires.add(alert);
          // Silent on an input where it never fires, at least its `for` after the start.
          if (firing.length === 0 && quiet.some((q) => q >= (forOf.get(alert) ?? 0))) silent.add(alert);
        }
      }
    }
    for (const alert of alertNames()) {
      expect(fires, `${alert}: a case where it is pending, then fires`).toContain(alert);
      expect(silent, `${alert}: a case where it stays silent`).toContain(alert);
    }
  });

  const promtool = requireParts("promtool rule tests", ["promtool"]);

  it.skipIf(!promtool)("promtool check rules accepts every rule file", async () => {
    const result = await execa("promtool", ["check", "rules", ...ruleFilePaths()], {
      reject: false,
      all: true,
    });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).not.toMatch(/FAILED|WARNING/);
  });

  it.skipIf(!promtool)(
    "promtool test rules passes the unit tests",
    async () => {
      const result = await execa("promtool", ["test", "rules", ...(await testFiles())], {
        reject: false,
        all: true,
      });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.all).not.toMatch(/FAILED/);
    },
    120_000,
  );
});
