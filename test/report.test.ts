import { describe, expect, it } from "vitest";
import type { Finding } from "../collector/checks/finding.js";
import { PLAIN, renderText, wrap } from "../collector/report/text.js";
import { parseSnapshot } from "../collector/snapshot-file.js";

const snapshot = parseSnapshot(JSON.stringify({ schemaVersion: 1, node: "n1", sources: {} }));

function finding(commands: string[]): Finding {
  return {
    id: "TEST_FINDING",
    severity: "warning",
    title: "A title",
    evidence: ["an evidence line that is long enough to need wrapping at eighty columns, surely, by now"],
    remediation: { summary: "Do this.", commands },
    runbook: "docs/findings.md#test_finding",
  };
}

describe("text report", () => {
  it("wraps at spaces within the width, with a hanging indent", () => {
    const lines = wrap("one two three four five six seven eight nine ten", 20, "  ", "    ");
    expect(lines).toEqual(["  one two three four", "    five six seven", "    eight nine ten"]);
    expect(lines.every((line) => line.length <= 20)).toBe(true);
  });

  it("breaks long commands with a trailing backslash, never inside quotes", () => {
    const quoted = `'[storage]\\ndriver = "overlay"\\ngraphroot = "/var/lib/containers/storage"\\n'`;
    const text = renderText(snapshot, [finding([`printf ${quoted} > /tmp/plain-storage.conf`])], PLAIN);
    const lines = text.split("\n");
    expect(lines).toContain("      $ printf \\");
    expect(lines).toContain(`          ${quoted} \\`);
    expect(lines).toContain("          > /tmp/plain-storage.conf");
  });

  it("shows notes without a prompt and sums up by severity", () => {
    const text = renderText(
      snapshot,
      [finding(["# in /etc/kubelet.yaml:", "systemctl restart kubelet"])],
      PLAIN,
    );
    expect(text).toContain("      # in /etc/kubelet.yaml:\n      $ systemctl restart kubelet\n");
    expect(text).toContain("WARNING (1)");
    expect(text.trimEnd().split("\n").at(-1)).toBe("Summary: 0 critical, 1 warning, 0 info");
  });

  it("shows control characters from a snapshot or a bundle instead of sending them to the terminal", () => {
    const hostile = parseSnapshot(
      JSON.stringify({ schemaVersion: 1, node: "n1\u001b]0;owned\u0007", sources: {} }),
    );
    const evil = { ...finding(["ls"]), subject: "/var/lib/\u001b[2J\u202eimages" };
    const text = renderText(hostile, [evil], PLAIN);
    for (const control of ["\u001b", "\u0007", "\u202e"]) expect(text).not.toContain(control);
    expect(text).toContain("n1\\x1b]0;owned\\x07");
    expect(text).toContain("/var/lib/\\x1b[2J\\u{202e}images");
  });
});
