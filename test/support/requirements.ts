import { execaSync } from "execa";

/**
 * Real parts a test needs. On a developer's machine a missing part skips the test, loudly; in CI
 * (CI=true) it fails the run instead, so a missing install step can never pass as green.
 */
export type Part =
  | "root"
  | "loop"
  | "xfs"
  | "containerd"
  | "bindfs"
  | "journal-remote"
  | "attr"
  | "podman"
  | "promtool"
  | "prometheus"
  | "chromium"
  | "shellcheck"
  | "jq";

const probes: Record<Part, () => boolean> = {
  root: () => process.getuid?.() === 0,
  loop: () => has("losetup", ["--version"]) && has("mkfs.ext4", ["-V"]),
  xfs: () => has("mkfs.xfs", ["-V"]),
  containerd: () => has("containerd", ["--version"]),
  bindfs: () => has("bindfs", ["--version"]) && has("fusermount3", ["--version"]),
  attr: () => has("setfattr", ["--version"]) && has("getfattr", ["--version"]),
  // Real lazy pulls: podman pulls from a docker-registry the test runs, images built with buildah.
  podman: () =>
    has("podman", ["--version"]) &&
    has("buildah", ["--version"]) &&
    has("/usr/bin/docker-registry", ["--version"]),
  // Parses PromQL (dashboard queries) and runs rule unit tests; Debian package prometheus.
  promtool: () => has("promtool", ["--version"]),
  // The server itself, for the end-to-end test of rules and dashboards; Debian package prometheus.
  prometheus: () => has("prometheus", ["--version"]),
  // Renders the HTML report headless, driven by playwright-core; Debian package chromium.
  chromium: () => has("chromium", ["--version"]),
  // Lints mustgather/'s shell scripts; Debian package shellcheck.
  shellcheck: () => has("shellcheck", ["--version"]),
  // mustgather/gather writes its statuses and summary with jq; Debian package jq.
  jq: () => has("jq", ["--version"]),
  // Writes real journal files from export format; journalctl and libsystemd come with systemd.
  "journal-remote": () =>
    ["/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote"].some((p) =>
      has(p, ["--version"]),
    ) && has("journalctl", ["--version"]),
};

function has(command: string, args: string[]): boolean {
  try {
    execaSync(command, args, { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** Returns true when the test may run; throws in CI when a part is missing. */
export function requireParts(suite: string, parts: Part[]): boolean {
  const missing = parts.filter((part) => !probes[part]());
  if (missing.length === 0) return true;
  const message = `${suite} needs ${missing.join(", ")} (run the tests as root after scripts/test.sh installed the packages)`;
  if (process.env.CI === "true") throw new Error(`CI: ${message}`);
  process.stderr.write(`\n${"!".repeat(78)}\n!! SKIPPING: ${message}\n${"!".repeat(78)}\n\n`);
  return false;
}
