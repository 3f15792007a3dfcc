import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERSION } from "../collector/version.js";
import {
  type BundleView,
  type ManifestItem,
  type OpenedBundle,
  openBundle,
} from "./support/bundle-archive.js";
import { CLI, mustGather, treeFlags } from "./support/cli.js";
import { journalEntry, MACHINE_ID, writeJournalFile } from "./support/journal.js";
import { requireParts } from "./support/requirements.js";
import {
  GRAPHROOT,
  HostTree,
  IMAGESTORE,
  imagesJson,
  layersJson,
  splitImageNode,
  startRuntime,
} from "./support/scenarios.js";
import { labelStore, layoutStore, writeSelinux } from "./support/selinux.js";

const ready = requireParts("must-gather bundles from real node trees", [
  "root",
  "loop",
  "xfs",
  "journal-remote",
]);

/**
 * Every secret planted in the tree, by where it is. None may appear anywhere in a bundle's bytes
 * (entries, names, the tar stream itself); redactions.json must count the masked ones.
 */
const SECRETS = {
  storageConfUrl: "s3cretStoragePass",
  registriesUrl: "MirrorPass123",
  registriesPassword: "hunter2-registries",
  storeHeader: "c2VjcmV0LWJhc2ljLWF1dGg=",
  storeInlineHeader: "inline-token-7f3a",
  authJson: "YWxpY2U6YXV0aGpzb25wYXNz",
  pullSecret: "cHVsbHNlY3JldHBhc3N3b3Jk",
  kubeconfigToken: "kubeconfig-token-abc123",
  pemKey: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
  journalPassword: "hunter2-journal",
  journalBearer: "eyJhbGciOiJSUzI1NiJ9.journaltoken",
  journalUrl: "StargzPass9",
  crictlPassword: "crictl-registry-password",
  crictlToken: "crictl-identity-token-0042",
  podLog: "podlogsecret42",
  argvToken: "argv-token-secret-77",
};

const NODE = "worker-0";
const IPV4 = "10.20.30.40";
const IPV6 = "fd00:1234::42";
const DOMAIN = "acme-corp.lan";

/** A fake crictl (a shell script on PATH): crictl info and images as CRI-O prints them, with credentials. */
const FAKE_CRICTL = `#!/bin/sh
# imagefs-doctor test stand-in for crictl; the shape of \`crictl info\` follows containerd's CRI
# plugin, whose config dump carries registry credentials in plain text.
for arg in "$@"; do
  case "$arg" in
    info) cat <<'EOF'
{"status":{"conditions":[{"type":"RuntimeReady","status":true}]},
 "config":{"registry":{"configs":{"registry.${DOMAIN}":{"auth":{"username":"robot","password":"${SECRETS.crictlPassword}","identitytoken":"${SECRETS.crictlToken}"}}}},
 "sandboxImage":"registry.${DOMAIN}/pause:3.9"}}
EOF
      exit 0 ;;
    images) cat <<'EOF'
{"images":[{"id":"sha256:aaaa","repoTags":["registry.${DOMAIN}/app:1"],"repoDigests":[],"size":"1024"}]}
EOF
      exit 0 ;;
  esac
done
echo "unexpected arguments: $*" >&2
exit 1
`;

async function fakeBin(dir: string, script: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "crictl"), script);
  await chmod(path.join(dir, "crictl"), 0o755);
  return dir;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The manifest's promises: each listed entry is there with its bytes and hash, each entry is listed. */
function expectManifestComplete(bundle: BundleView): void {
  const listed = new Map(bundle.manifest.items.filter((i) => i.path !== null).map((i) => [i.path!, i]));
  for (const name of bundle.names) {
    if (name === "manifest.json" || name === "version" || name === "timestamp" || name === "redactions.json")
      continue;
    expect(listed.has(name), `${name} is in the manifest`).toBe(true);
  }
  for (const [name, item] of listed) {
    const data = bundle.files.get(name);
    expect(data, `${name} is in the archive`).toBeDefined();
    expect(item.bytes, name).toBe(data!.length);
    expect(item.sha256, name).toBe(sha256(data!));
  }
  for (const item of bundle.manifest.items) {
    expect(["ok", "error", "timeout", "skipped"]).toContain(item.status);
    expect(typeof item.durationMs).toBe("number");
    expect(Array.isArray(item.redactions)).toBe(true);
    if (item.status !== "ok") expect(item.error, JSON.stringify(item.source)).toBeTruthy();
  }
}

function item(bundle: BundleView, predicate: (i: ManifestItem) => boolean): ManifestItem {
  const found = bundle.manifest.items.find(predicate);
  if (!found) throw new Error("no such manifest item");
  return found;
}

const bySource = (source: string) => (i: ManifestItem) => i.source === source;
const byPath = (name: string) => (i: ManifestItem) => i.path === name;

/** A split-image CRI-O node with SELinux labels, a journal, a pod log and secrets in every kind of file. */
async function plantedNode(tree: HostTree): Promise<void> {
  await splitImageNode(tree);
  await startRuntime(tree, { imagestore: IMAGESTORE });
  await writeSelinux(tree, { kernel: 1 });
  await layoutStore(tree, GRAPHROOT, "aaaa");
  await layoutStore(tree, IMAGESTORE, "bbbb");
  await tree.write(`${IMAGESTORE}/overlay-images/images.json`, imagesJson(3, `registry.${DOMAIN}/app`));
  await tree.write(`${IMAGESTORE}/overlay-layers/layers.json`, layersJson(3, 4096));
  labelStore(tree, GRAPHROOT);
  labelStore(tree, IMAGESTORE, { root: "default_t", below: "default_t" });

  await tree.write(
    "/etc/containers/storage.conf",
    `# pulls go through https://alice:${SECRETS.storageConfUrl}@proxy.${DOMAIN}:3128 (planted)
[storage]
driver = "overlay"
graphroot = "${GRAPHROOT}"
runroot = "/run/containers/storage"
`,
  );
  await tree.write(
    "/etc/containers/registries.conf",
    `unqualified-search-registries = ["registry.${DOMAIN}"]

[[registry]]
location = "registry.${DOMAIN}"

[[registry.mirror]]
location = "https://bob:${SECRETS.registriesUrl}@mirror.${DOMAIN}:5000"

[[registry.mirror]]
location = "${IPV4}:5000"
`,
  );
  // A drop-in whose name holds a right-to-left override: it must not make the bundle unreadable.
  await tree.write("/etc/containers/registries.conf.d/60-\u202ecod.conf", "# planted name\n");
  await tree.write(
    "/etc/containers/registries.conf.d/50-mirror.conf",
    `# credentials someone pasted here\npassword = "${SECRETS.registriesPassword}"\n`,
  );
  await tree.write(
    "/etc/stargz-store/config.toml",
    `[[resolver.host."registry.${DOMAIN}".mirrors]]
host = "mirror.${DOMAIN}"

[resolver.host."registry.${DOMAIN}".mirrors.header]
Authorization = ["Basic ${SECRETS.storeHeader}"]

[[resolver.host."registry.${DOMAIN}".mirrors]]
host = "${IPV6}"
header = { X-Auth-Token = "${SECRETS.storeInlineHeader}" }
`,
  );
  await tree.write(
    "/run/containers/0/auth.json",
    JSON.stringify({ auths: { [`registry.${DOMAIN}`]: { auth: SECRETS.authJson } } }),
  );
  await tree.write(
    "/var/lib/kubelet/config.json",
    JSON.stringify({ auths: { "quay.io": { auth: SECRETS.pullSecret } } }),
  );
  await tree.write(
    "/etc/kubernetes/kubelet.conf",
    `apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://api.${DOMAIN}:6443
  name: c
users:
- name: kubelet
  user:
    token: ${SECRETS.kubeconfigToken}
`,
  );
  await tree.write(
    "/etc/crio/crio.conf.d/99-tls.conf",
    `-----BEGIN PRIVATE KEY-----\n${SECRETS.pemKey}\nAAAA\n-----END PRIVATE KEY-----\n`,
  );
  await tree.write(
    "/var/log/pods/default_app-1_11111111-2222-4333-8444-555555555555/app/0.log",
    `2026-11-23T08:00:00.200000000Z stderr F /app: error while loading shared libraries: libc.so.6: cannot apply additional memory protection after relocation: Permission denied token=${SECRETS.podLog}\n`,
  );
  const now = Date.now();
  const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000);
  const avc = (when: Date, comm: string) =>
    `node=${NODE} type=AVC msg=audit(${(when.getTime() / 1000).toFixed(3)}:77): avc:  denied  { read execute } for  pid=7 comm="${comm}" path="/usr/lib64/libc.so.6" dev="loop5" ino=131 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:default_t:s0 tclass=file permissive=0`;
  await tree.write(
    "/var/log/audit/audit.log",
    [
      avc(at(60 * 72), "old-app"),
      `type=SYSCALL msg=audit(${(at(10).getTime() / 1000).toFixed(3)}:78): arch=c000003e syscall=9 success=no`,
      avc(at(10), "app"),
      "",
    ].join("\n"),
  );
  // A kubelet whose command line carries a credential: the snapshot records its argv.
  await tree.startProcess("kubelet", [
    "--config=/var/lib/kubelet/config.yaml",
    `--node-ip=${IPV4}`,
    "--token",
    SECRETS.argvToken,
  ]);
  const entry = (minutesAgo: number, unit: string, message: string) =>
    journalEntry(at(minutesAgo), {
      _SYSTEMD_UNIT: unit,
      SYSLOG_IDENTIFIER: unit.replace(".service", ""),
      _PID: "4242",
      _TRANSPORT: "stdout",
      _HOSTNAME: NODE,
      MESSAGE: message,
    });
  await writeJournalFile(
    tree.local(`/var/log/journal/${MACHINE_ID}/system.journal`),
    // In time order, as journald appends them (an excerpt is read backward and ends at the first
    // entry older than the window, as `journalctl --reverse --since` does).
    [
      entry(60 * 48, "crio.service", "an entry older than the window"),
      entry(
        50,
        "crio.service",
        `Pulling image registry.${DOMAIN}/app:1 with password=${SECRETS.journalPassword}`,
      ),
      entry(40, "crio.service", `request header Authorization: Bearer ${SECRETS.journalBearer}`),
      entry(30, "kubelet.service", `Node ${NODE} has address ${IPV4} and ${IPV6}`),
      entry(
        20,
        "stargz-store.service",
        `failed to resolve "https://carol:${SECRETS.journalUrl}@registry.${DOMAIN}/v2/"`,
      ),
    ],
    tree.scratch,
  );
}

describe.skipIf(!ready)("must-gather on a split-image node with secrets planted everywhere", () => {
  let tree: HostTree;
  let bin: string;
  let plain: OpenedBundle;
  let obfuscated: OpenedBundle;
  const figures: string[] = [];

  beforeAll(async () => {
    tree = await HostTree.create();
    await plantedNode(tree);
    bin = await fakeBin(path.join(tree.scratch, "bin"), FAKE_CRICTL);
    const out = path.join(tree.scratch, "out");
    await mkdir(out);
    for (const [name, extra] of [
      ["plain", []],
      ["obfuscated", ["--obfuscate"]],
    ] as const) {
      const file = path.join(out, `${name}.tar.gz`);
      const started = performance.now();
      const run = await mustGather(tree, ["-o", file, ...extra], { bin, statMs: 1000 });
      const elapsed = performance.now() - started;
      expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
      // Quiet without a terminal.
      expect(Buffer.from(run.stderr).toString()).toBe("");
      figures.push(`${name}: ${(await stat(file)).size} bytes in ${Math.round(elapsed)} ms`);
      const bundle = await openBundle(file);
      if (name === "plain") plain = bundle;
      else obfuscated = bundle;
    }
    // No temporary file is left next to the bundles.
    expect((await readdir(out)).sort()).toEqual(["obfuscated.tar.gz", "plain.tar.gz"]);
  });

  afterAll(async () => {
    process.stderr.write(`must-gather figures (split-image node): ${figures.join("; ")}\n`);
    await tree?.cleanup();
  });

  it("lays the bundle out under one top directory, generated entries first, the rest sorted", () => {
    expect(plain.top).toMatch(new RegExp(`^imagefs-doctor-${NODE}-\\d{8}T\\d{6}Z$`));
    expect(plain.names.slice(0, 7)).toEqual([
      "version",
      "timestamp",
      "manifest.json",
      "redactions.json",
      "snapshot.json",
      "findings.json",
      "report.html",
    ]);
    const rest = plain.names.slice(7);
    expect(rest).toEqual([...rest].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(plain.text("version")).toBe(`imagefs-doctor\n${VERSION}\n`);
    const [start, end] = plain.text("timestamp").trim().split("\n");
    expect(Date.parse(start!)).toBeLessThanOrEqual(Date.parse(end!));
    expect(plain.entries.every((e) => e.type === "file" || e.type === "directory")).toBe(true);
    expect(plain.text("report.html")).toMatch(/^<!doctype html>/i);
  });

  it("lists every item in the manifest with its source, status, bytes and sha256", () => {
    expectManifestComplete(plain);
    expect(plain.manifest.capped).toBe(false);
    for (const name of [
      "host/etc/containers/storage.conf",
      "host/etc/containers/registries.conf",
      "host/etc/containers/registries.conf.d/50-mirror.conf",
      "host/etc/crio/crio.conf",
      "host/etc/crio/crio.conf.d/10-imagestore.conf",
      "host/etc/stargz-store/config.toml",
      "host/var/lib/kubelet/config.yaml",
      "host/etc/selinux/config",
      "host/etc/selinux/targeted/contexts/files/file_contexts.subs",
      `host${IMAGESTORE}/overlay-images/images.json`,
      `host${IMAGESTORE}/overlay-layers/layers.json`,
      `host${GRAPHROOT}/overlay-layers/layers.json`,
      "host/proc/1/mountinfo",
      "facts/filesystems.txt",
      "facts/cri-imagefsinfo.json",
      "facts/selinux-store-labels.txt",
      "facts/fusectl.json",
      "commands/crictl-info.json",
      "commands/crictl-images.json",
      "journal/crio.service.log",
      "journal/kubelet.service.log",
      "journal/stargz-store.service.log",
      "logs/pod-loader-errors.log",
    ]) {
      expect(item(plain, byPath(name)).status, name).toBe("ok");
    }
    expect(item(plain, byPath("host/etc/containers/storage.conf")).source).toBe(
      "/etc/containers/storage.conf",
    );
    const crictl = item(plain, byPath("commands/crictl-info.json"));
    expect(crictl.source).toEqual(expect.arrayContaining(["--runtime-endpoint", "info"]));
    // The statfs table names both store roles on their own filesystems.
    const table = plain.text("facts/filesystems.txt");
    expect(table).toContain("topology: split-image");
    expect(table).toMatch(new RegExp(`imagefs\\s+${IMAGESTORE}\\s+ok\\s+\\S+\\s+xfs`));
    expect(plain.text("facts/selinux-store-labels.txt")).toContain("default_t");
    // The journal window: the entry of two days ago is not there.
    expect(plain.text("journal/crio.service.log")).not.toContain("older than the window");
    expect(plain.text("journal/crio.service.log")).toContain(`Pulling image registry.${DOMAIN}/app:1`);
    // AVC records of the window only, and the loader error lines of the pod logs.
    const avcs = plain.text("logs/audit-avc.log");
    expect(avcs).toContain('comm="app"');
    expect(avcs).not.toContain("old-app");
    expect(avcs).not.toContain("SYSCALL");
    expect(plain.text("logs/pod-loader-errors.log")).toContain(
      "cannot apply additional memory protection after relocation: Permission denied",
    );
  });

  it("records credential files as skipped and never reads them into the bundle", () => {
    for (const [source, reason] of [
      ["/run/containers/0/auth.json", "auth.json"],
      ["/var/lib/kubelet/config.json", "pull secret"],
      ["/etc/kubernetes/kubelet.conf", "kubeconfig"],
      ["/etc/crio/crio.conf.d/99-tls.conf", "private key"],
    ]) {
      const skipped = item(plain, bySource(source!));
      expect(skipped.status, source).toBe("skipped");
      expect(skipped.path, source).toBeNull();
      expect(skipped.error, source).toContain(reason);
    }
  });

  it("masks every planted secret, in every entry and in the archive's own bytes, and counts each", () => {
    for (const bundle of [plain, obfuscated]) {
      const everything = bundle.tar.toString("latin1");
      for (const [where, secret] of Object.entries(SECRETS)) {
        expect(everything.includes(secret), `${where}: ${secret}`).toBe(false);
      }
    }
    const redactions = plain.json<{ rule: string; file: string; count: number }[]>("redactions.json");
    const count = (file: string, rule: string) =>
      redactions.find((r) => r.file === file && r.rule === rule)?.count ?? 0;
    expect(count("host/etc/containers/storage.conf", "url-credentials")).toBe(1);
    expect(count("host/etc/containers/registries.conf", "url-credentials")).toBe(1);
    expect(count("host/etc/containers/registries.conf.d/50-mirror.conf", "password")).toBe(1);
    expect(count("host/etc/stargz-store/config.toml", "header-value")).toBe(2);
    expect(count("journal/crio.service.log", "password")).toBe(1);
    expect(count("journal/crio.service.log", "authorization-header")).toBe(1);
    expect(count("journal/stargz-store.service.log", "url-credentials")).toBe(1);
    expect(count("commands/crictl-info.json", "password")).toBe(2);
    expect(count("logs/pod-loader-errors.log", "password")).toBe(1);
    expect(count("snapshot.json", "password")).toBeGreaterThanOrEqual(1);
    // The manifest carries each item's own counts; redactions.json never the original text.
    expect(item(plain, byPath("host/etc/stargz-store/config.toml")).redactions).toEqual([
      { rule: "header-value", count: 2 },
    ]);
    for (const row of redactions) expect(Object.keys(row).sort()).toEqual(["count", "file", "rule"]);
    // What was masked is still readable around the mask.
    expect(plain.text("host/etc/stargz-store/config.toml")).toContain('Authorization = ["[REDACTED]"]');
    expect(plain.text("journal/crio.service.log")).toContain("password=[REDACTED]");
    expect(plain.json<{ config: unknown }>("commands/crictl-info.json").config).toBeDefined();
  });

  it("judges like diagnose: findings.json is what diagnose finds on the same snapshot and on the tree", async () => {
    const dir = path.join(tree.scratch, "extracted");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "snapshot.json"), plain.files.get("snapshot.json")!);
    const findings = plain.json<{
      node: string;
      generatedAt: string;
      findings: { id: string; subject?: string }[];
    }>("findings.json");
    expect(findings.node).toBe(NODE);
    expect(findings.findings.length).toBeGreaterThan(0);
    const fromSnapshot = await execa(process.execPath, [
      CLI,
      "diagnose",
      "--json",
      "--fail-on",
      "never",
      "--snapshot",
      path.join(dir, "snapshot.json"),
    ]);
    expect((JSON.parse(fromSnapshot.stdout) as { findings: unknown }).findings).toEqual(findings.findings);
    const live = await execa(
      process.execPath,
      [CLI, "diagnose", "--json", "--fail-on", "never", ...treeFlags(tree, { criMs: 1000, statMs: 1000 })],
      { extendEnv: false, env: { PATH: "/usr/bin:/bin" } },
    );
    const ids = (list: { id: string; subject?: string }[]) =>
      list.map((f) => `${f.id} ${f.subject ?? ""}`).sort();
    expect(ids((JSON.parse(live.stdout) as { findings: { id: string }[] }).findings)).toEqual(
      ids(findings.findings),
    );
    expect(ids(findings.findings).join("\n")).toMatch(/SELINUX/);
  });

  it("--obfuscate leaves no node name, domain or address anywhere, with the same token for the same name", () => {
    const everything = obfuscated.tar.toString("utf8");
    for (const value of [NODE, IPV4, IPV6, DOMAIN]) expect(everything.includes(value), value).toBe(false);
    expect(obfuscated.top).toMatch(/^imagefs-doctor-host-\d{4}-\d{8}T\d{6}Z$/);
    expectManifestComplete(obfuscated);
    // Every JSON entry is still JSON.
    for (const name of obfuscated.names.filter((n) => n.endsWith(".json"))) {
      expect(() => obfuscated.json(name), name).not.toThrow();
    }
    const snapshot = obfuscated.json<{ node: string }>("snapshot.json");
    expect(snapshot.node).toMatch(/^host-\d{4}$/);
    expect(obfuscated.json<{ node: string }>("findings.json").node).toBe(snapshot.node);
    expect(obfuscated.top).toContain(snapshot.node);
    // One name, one token, across files: the mirror in registries.conf and in the store's config.
    const registries = obfuscated.text("host/etc/containers/registries.conf");
    const mirror = /location = "https:\/\/\[REDACTED\]@(host-\d{4}):5000"/.exec(registries)?.[1];
    expect(mirror).toBeDefined();
    expect(obfuscated.text("host/etc/stargz-store/config.toml")).toContain(`host = "${mirror}"`);
    const address = /location = "(ip-\d{4}):5000"/.exec(registries)?.[1];
    expect(obfuscated.text("journal/kubelet.service.log")).toContain(`has address ${address} and ip-`);
    // The journal's host column is the node's token.
    expect(obfuscated.text("journal/kubelet.service.log")).toContain(` ${snapshot.node} kubelet[4242]:`);
    const redactions = obfuscated.json<{ rule: string }[]>("redactions.json");
    expect(redactions.some((r) => r.rule === "obfuscate-hostname")).toBe(true);
    expect(redactions.some((r) => r.rule === "obfuscate-ip")).toBe(true);
    // Without --obfuscate the names stay (the engineer needs them).
    expect(plain.text("host/etc/containers/registries.conf")).toContain(`mirror.${DOMAIN}`);
  });

  it("is read back by diagnose --bundle, a name with a bidi override escaped", async () => {
    expect(plain.names).toContain("host/etc/containers/registries.conf.d/60-\\u{202e}cod.conf");
    const file = path.join(tree.scratch, "out", "plain.tar.gz");
    const run = await execa(
      process.execPath,
      [CLI, "diagnose", "--bundle", file, "--json", "--fail-on", "never"],
      {
        reject: false,
      },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { findings: unknown[] };
    expect(report.findings).toEqual(plain.json<{ findings: unknown[] }>("findings.json").findings);
  });

  it("streams the same layout to stdout with -o -", async () => {
    const run = await mustGather(tree, ["-o", "-"], { bin, statMs: 1000 });
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    const streamed = await openBundle(Buffer.from(run.stdout));
    expect(streamed.top).toMatch(new RegExp(`^imagefs-doctor-${NODE}-`));
    expectManifestComplete(streamed);
    expect(streamed.names).toContain("journal/crio.service.log");
    expect(streamed.tar.toString("latin1").includes(SECRETS.journalPassword)).toBe(false);
  });

  it("shows each step with its status and time on a terminal", async () => {
    const file = path.join(tree.scratch, "out", "tty.tar.gz");
    const command = [process.execPath, CLI, "must-gather", "-o", file, ...treeFlags(tree, { criMs: 1000 })]
      .map((arg) => `'${arg}'`)
      .join(" ");
    // script(1) gives the command a pseudo-terminal.
    const run = await execa("script", ["-qec", command, "/dev/null"], {
      reject: false,
      env: { PATH: `${bin}:/usr/bin:/bin` },
    });
    expect(run.exitCode, run.stdout).toBe(0);
    for (const step of ["collect snapshot", "configuration files", "journal", "fusectl"]) {
      expect(run.stdout).toMatch(new RegExp(`ok\\s+${step}\\s+\\d+\\.\\d s`));
    }
    expect(run.stdout).toContain(`bundle written to ${file}`);
  });

  it("keeps the archive within --max-size, leaving out what does not fit and saying so", async () => {
    const file = path.join(tree.scratch, "out", "small.tar.gz");
    const run = await mustGather(tree, ["-o", file, "--max-size", "60KB"], { bin, statMs: 1000 });
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    expect((await stat(file)).size).toBeLessThanOrEqual(60_000);
    const small = await openBundle(file);
    expectManifestComplete(small);
    expect(small.manifest.capped).toBe(true);
    const left = small.manifest.items.filter((i) => i.error?.includes("size cap"));
    expect(left.length).toBeGreaterThan(0);
    expect(small.names).toContain("findings.json");
  });

  it("counts the journal with the packs of --log-rules too (the worker parses them beside the built-in ones)", async () => {
    const rules = path.join(tree.scratch, "rules");
    await mkdir(rules, { recursive: true });
    await writeFile(
      path.join(rules, "site.yaml"),
      "name: site\nselect:\n  - _SYSTEMD_UNIT: [crio.service]\nrules:\n  - reason: ImagePull\n    match: 'Pulling image'\n",
    );
    const file = path.join(tree.scratch, "out", "rules.tar.gz");
    const run = await mustGather(tree, ["-o", file, "--log-rules", rules], { bin, statMs: 1000 });
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    const { facts } = (await openBundle(file)).json<{
      sources: {
        journal: { facts: { packs: string[]; counts: { pack: string; reason: string; count: number }[] } };
      };
    }>("snapshot.json").sources.journal;
    expect(facts.counts.find((c) => c.pack === "site" && c.reason === "ImagePull")?.count).toBe(1);
    // The built-in packs still apply beside it.
    expect(facts.packs).toEqual(expect.arrayContaining(["site", "stargz-store", "crio-storage"]));
  });
});
