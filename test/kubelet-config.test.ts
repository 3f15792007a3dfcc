import { afterEach, describe, expect, it } from "vitest";
import { runChecks } from "../collector/checks/registry.js";
import { type EvictionInput, effectiveEviction } from "../collector/model/eviction.js";
import { parseQuantity } from "../collector/model/quantity.js";
import type { Snapshot } from "../collector/snapshot.js";
import type { KubeletConfigFacts } from "../collector/sources/kubelet-config.js";
import { requireParts } from "./support/requirements.js";
import {
  baseNode,
  collectTree,
  HostTree,
  IMAGESTORE,
  KUBELET_ROOT,
  splitImageNode,
  startRuntime,
  writeKubeletConfig,
} from "./support/scenarios.js";

function kubelet(snapshot: Snapshot): KubeletConfigFacts {
  const result = snapshot.sources["kubelet-config"];
  if (result.status !== "ok") throw new Error(`kubelet-config: ${result.status}`);
  return result.facts;
}

const input = (partial: Partial<EvictionInput>): EvictionInput => ({
  hard: null,
  hardFrom: () => "config.yaml",
  soft: null,
  softFrom: () => "config.yaml",
  softGracePeriod: {},
  mergeDefaults: false,
  ...partial,
});

/** What every kubelet drop-in must start with: the kubelet refuses one without it. */
const DROP_IN = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

/** A running kubelet with --config (imageGCHighThresholdPercent 90) and --config-dir=/etc/kubelet.d. */
async function kubeletWithConfigDir(): Promise<HostTree> {
  const tree = await HostTree.create();
  await baseNode(tree);
  await tree.write("/var/lib/kubelet/config.yaml", `${DROP_IN}imageGCHighThresholdPercent: 90\n`);
  await tree.startProcess("kubelet", [
    "--config=/var/lib/kubelet/config.yaml",
    "--config-dir=/etc/kubelet.d",
  ]);
  return tree;
}

describe("effective eviction thresholds (the kubelet's rules)", () => {
  it("applies the five Linux defaults when evictionHard is unset", () => {
    const facts = effectiveEviction(input({}));
    expect(facts.hard.map((t) => `${t.signal}<${t.raw}`).sort()).toEqual([
      "imagefs.available<15%",
      "imagefs.inodesFree<5%",
      "memory.available<100Mi",
      "nodefs.available<10%",
      "nodefs.inodesFree<5%",
    ]);
    expect(facts.defaultsDropped).toEqual([]);
  });

  it("replaces every default when evictionHard is set, even to an empty map", () => {
    expect(effectiveEviction(input({ hard: { "memory.available": "200Mi" } })).defaultsDropped).toEqual([
      "nodefs.available",
      "nodefs.inodesFree",
      "imagefs.available",
      "imagefs.inodesFree",
    ]);
    expect(effectiveEviction(input({ hard: {} })).hard).toEqual([]);
  });

  it("merges the defaults under the user's values with mergeDefaultEvictionSettings", () => {
    const facts = effectiveEviction(input({ hard: { "nodefs.available": "20%" }, mergeDefaults: true }));
    expect(facts.defaultsDropped).toEqual([]);
    expect(facts.hard.find((t) => t.signal === "nodefs.available")?.raw).toBe("20%");
    expect(facts.hard.find((t) => t.signal === "imagefs.available")?.from).toBe("kubelet default");
  });

  it("treats 0% and 100% as switched off, not as dropped by accident", () => {
    const facts = effectiveEviction(
      input({ hard: { ...defaultsWith(), "imagefs.available": "0%", "imagefs.inodesFree": "100%" } }),
    );
    expect(facts.disabled).toEqual(["imagefs.available", "imagefs.inodesFree"]);
    expect(facts.defaultsDropped).toEqual([]);
    expect(facts.hard.map((t) => t.signal)).not.toContain("imagefs.available");
  });

  it("ignores containerfs keys, rejects bad quantities and soft thresholds without grace period", () => {
    const facts = effectiveEviction(
      input({
        hard: { ...defaultsWith(), "containerfs.available": "10%", "nodefs.available": "lots" },
        soft: { "imagefs.available": "20%" },
      }),
    );
    expect(facts.ignoredContainerfs).toEqual(["containerfs.available"]);
    expect(facts.invalid.map((i) => i.signal)).toEqual(["nodefs.available", "imagefs.available"]);
    expect(facts.invalid[1]?.reason).toContain("grace period must be specified");
  });

  it("parses Kubernetes quantities", () => {
    expect(parseQuantity("100Mi")).toBe(100 * 2 ** 20);
    expect(parseQuantity("1.5G")).toBe(1.5e9);
    expect(parseQuantity("2e3")).toBe(2000);
    expect(parseQuantity("500m")).toBe(0.5);
    expect(parseQuantity("10 Gi")).toBeUndefined();
    expect(parseQuantity("ten")).toBeUndefined();
  });
});

function defaultsWith(): Record<string, string> {
  return {
    "memory.available": "100Mi",
    "nodefs.available": "10%",
    "nodefs.inodesFree": "5%",
    "imagefs.available": "15%",
    "imagefs.inodesFree": "5%",
  };
}

/**
 * A key the kubelet does not know is not an error: it decodes leniently and logs "using lenient
 * decoding as strict decoding failed" (kubelet/kubeletconfig/util/codec), so the rest of the file
 * still applies. Likewise here: the file reads as ok, nothing reports it as a parse error, and no
 * finding is about it.
 */
function expectUnknownKeysIgnored(snapshot: Snapshot, facts: KubeletConfigFacts, key: string): void {
  expect(facts.files.filter((f) => f.status !== "ok")).toEqual([]);
  const findings = runChecks(snapshot);
  expect(findings.map((f) => f.id)).not.toContain("CONFIG_PARSE_ERROR");
  expect(findings.filter((f) => JSON.stringify(f).includes(key))).toEqual([]);
}

const ready = requireParts("kubelet configuration tests", ["root", "loop", "xfs"]);

describe.skipIf(!ready)("kubelet configuration on a host tree", () => {
  let tree: HostTree;
  afterEach(async () => {
    await tree?.cleanup();
  });

  it("reads OpenShift's JSON kubelet.conf and merges its drop-ins key by key, in name order", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/kubernetes/kubelet.conf",
      JSON.stringify({
        kind: "KubeletConfiguration",
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        evictionHard: { "memory.available": "500Mi" },
        someFutureField: { nested: true },
        imageGCHighThresholdPercent: 90,
      }),
    );
    await tree.write(
      "/etc/openshift/kubelet.conf.d/20-eviction.conf",
      `${DROP_IN}evictionHard:\n  nodefs.available: 12%\n`,
    );
    await tree.write(
      "/etc/openshift/kubelet.conf.d/10-gates.conf",
      `${DROP_IN}featureGates:\n  KubeletSeparateDiskGC: false\nevictionHard:\n  nodefs.available: 7%\n`,
    );
    // The kubelet walks its drop-in directory (filepath.WalkDir) and applies only *.conf files.
    await tree.write(
      "/etc/openshift/kubelet.conf.d/15-site/30-gc.conf",
      `${DROP_IN}imageGCHighThresholdPercent: 85\n`,
    );
    await tree.write(
      "/etc/openshift/kubelet.conf.d/40-notes.yaml",
      `${DROP_IN}imageGCHighThresholdPercent: 50\n`,
    );
    const snapshot = await collectTree(tree);
    const facts = kubelet(snapshot);
    expect(facts.configFile).toEqual({ path: "/etc/kubernetes/kubelet.conf", foundBy: "well-known path" });
    expectUnknownKeysIgnored(snapshot, facts, "someFutureField");
    expect(facts.files.map((f) => `${f.path}:${f.format}`)).toEqual([
      "/etc/kubernetes/kubelet.conf:json",
      "/etc/openshift/kubelet.conf.d/10-gates.conf:yaml",
      "/etc/openshift/kubelet.conf.d/15-site/30-gc.conf:yaml",
      "/etc/openshift/kubelet.conf.d/20-eviction.conf:yaml",
    ]);
    expect(facts.eviction.configuredHard).toEqual({ "memory.available": "500Mi", "nodefs.available": "12%" });
    expect(facts.eviction.hard.find((t) => t.signal === "nodefs.available")?.from).toBe(
      "/etc/openshift/kubelet.conf.d/20-eviction.conf",
    );
    expect(facts.separateDiskGC).toEqual({
      value: false,
      from: "/etc/openshift/kubelet.conf.d/10-gates.conf",
    });
    expect(facts.imageGC.highThresholdPercent).toEqual({
      value: 85,
      from: "/etc/openshift/kubelet.conf.d/15-site/30-gc.conf",
    });
  });

  it("reports a drop-in without apiVersion/kind as the kubelet does (it refuses to start), and does not merge it", async () => {
    tree = await kubeletWithConfigDir();
    await tree.write("/etc/kubelet.d/10-bare.conf", "imageGCHighThresholdPercent: 60\n");
    await tree.write(
      "/etc/kubelet.d/20-other.conf",
      "apiVersion: v1\nkind: ConfigMap\nimageGCHighThresholdPercent: 70\n",
    );
    const snapshot = await collectTree(tree);
    const facts = kubelet(snapshot);
    const status = (file: string) => facts.files.find((f) => f.path === file);
    expect(status("/etc/kubelet.d/10-bare.conf")?.error?.message).toMatch(
      /^no apiVersion\/kind: the kubelet refuses/,
    );
    expect(status("/etc/kubelet.d/20-other.conf")?.error?.message).toMatch(
      /^unknown apiVersion\/kind v1\/ConfigMap/,
    );
    expect(facts.imageGC.highThresholdPercent).toEqual({ value: 90, from: "/var/lib/kubelet/config.yaml" });
    const finding = runChecks(snapshot).find((f) => f.id === "CONFIG_PARSE_ERROR");
    expect(finding?.evidence.join("\n")).toContain("/etc/kubelet.d/10-bare.conf");
    expect(finding?.remediation.commands).toContain("systemctl restart kubelet");
  });

  it("reports a symlink loop and a symlink to a directory in its drop-in directory, and merges the other drop-ins", async () => {
    tree = await kubeletWithConfigDir();
    await tree.write("/etc/kubelet.d/05-gc.conf", `${DROP_IN}imageGCHighThresholdPercent: 80\n`);
    // A link to itself (ELOOP), and a link to a directory: filepath.WalkDir does not follow links,
    // and the kubelet's read of a *.conf entry that is a directory fails.
    await tree.symlink("10-loop.conf", "/etc/kubelet.d/10-loop.conf");
    await tree.write("/etc/kubelet-elsewhere/30-hidden.conf", `${DROP_IN}imageGCHighThresholdPercent: 50\n`);
    await tree.symlink("../kubelet-elsewhere", "/etc/kubelet.d/15-x.conf");
    await tree.write("/etc/kubelet.d/20-low.conf", `${DROP_IN}imageGCLowThresholdPercent: 70\n`);
    const snapshot = await collectTree(tree);
    const facts = kubelet(snapshot);
    const status = (file: string) => facts.files.find((f) => f.path === file);
    expect(status("/etc/kubelet.d/10-loop.conf")).toMatchObject({ status: "error" });
    expect(status("/etc/kubelet.d/10-loop.conf")?.error?.message).toMatch(/ELOOP/);
    expect(status("/etc/kubelet.d/15-x.conf")).toMatchObject({ status: "error" });
    expect(status("/etc/kubelet.d/15-x.conf")?.error?.message).toMatch(/not a regular file/);
    expect(facts.files.map((f) => f.path)).not.toContain("/etc/kubelet.d/15-x.conf/30-hidden.conf");
    expect(facts.imageGC.highThresholdPercent).toEqual({ value: 80, from: "/etc/kubelet.d/05-gc.conf" });
    expect(facts.imageGC.lowThresholdPercent).toEqual({ value: 70, from: "/etc/kubelet.d/20-low.conf" });
    const findings = runChecks(snapshot).filter((f) => f.id === "CONFIG_PARSE_ERROR");
    expect(findings.map((f) => f.subject)).toEqual([
      "/etc/kubelet.d/10-loop.conf",
      "/etc/kubelet.d/15-x.conf",
    ]);
    expect(findings[0]?.evidence[0]).toMatch(/^\/etc\/kubelet\.d\/10-loop\.conf: ELOOP/);
    expect(findings[1]?.evidence[0]).toMatch(/^\/etc\/kubelet\.d\/15-x\.conf: .*not a regular file/);
    expect(findings[1]?.remediation.commands).toContain("systemctl restart kubelet");
  });

  it("reads a YAML KubeletConfiguration at /etc/kubernetes/kubelet.conf, ignoring keys it does not know", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/kubernetes/kubelet.conf",
      [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        "evictionHard:",
        "  imagefs.available: 20%",
        "  nodefs.available: 10%",
        "futureGCPolicy:", // a field of a newer kubelet
        "  mode: aggressive",
        "imageMaximumGCAge: 168h",
        "",
      ].join("\n"),
    );
    const snapshot = await collectTree(tree);
    const facts = kubelet(snapshot);
    expect(facts.configFile).toEqual({ path: "/etc/kubernetes/kubelet.conf", foundBy: "well-known path" });
    expect(facts.files[0]).toMatchObject({
      path: "/etc/kubernetes/kubelet.conf",
      format: "yaml",
      status: "ok",
    });
    expect(facts.eviction.configuredHard).toEqual({ "imagefs.available": "20%", "nodefs.available": "10%" });
    expect(facts.eviction.hard.find((t) => t.signal === "imagefs.available")?.from).toBe(
      "/etc/kubernetes/kubelet.conf",
    );
    expectUnknownKeysIgnored(snapshot, facts, "futureGCPolicy");
  });

  it("skips kubeadm's /etc/kubernetes/kubelet.conf (a kubeconfig) and reads /var/lib/kubelet/config.yaml", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write("/etc/kubernetes/kubelet.conf", "apiVersion: v1\nkind: Config\nclusters: []\n");
    await writeKubeletConfig(tree, { imageGCLowThresholdPercent: 70 });
    const facts = kubelet(await collectTree(tree));
    expect(facts.configFile?.path).toBe(`${KUBELET_ROOT}/config.yaml`);
    expect(facts.files[0]?.kind).toContain("not a KubeletConfiguration (kind: Config)");
    expect(facts.imageGC.lowThresholdPercent.value).toBe(70);
  });

  it("follows the running kubelet's --config, --root-dir and deprecated --eviction-hard flag", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      "/etc/custom/kubelet.yaml",
      "kind: KubeletConfiguration\nevictionHard:\n  memory.available: 1Gi\n",
    );
    await tree.mkdir("/data/kubelet");
    await tree.startProcess("/usr/bin/kubelet", [
      "--config=/etc/custom/kubelet.yaml",
      "--root-dir",
      "/data/kubelet",
      "--eviction-hard=nodefs.available<15%,imagefs.available<20%",
    ]);
    const snapshot = await collectTree(tree);
    const facts = kubelet(snapshot);
    expect(facts.configFile).toEqual({ path: "/etc/custom/kubelet.yaml", foundBy: "cmdline" });
    expect(facts.rootDir).toEqual({ value: "/data/kubelet", from: "kubelet flag --root-dir" });
    expect(facts.eviction.configuredHard).toEqual({ "nodefs.available": "15%", "imagefs.available": "20%" });
    const fs = snapshot.sources.filesystems.status === "ok" ? snapshot.sources.filesystems.facts : undefined;
    expect(fs?.roles.find((r) => r.role === "nodefs")?.path).toBe("/data/kubelet");
  });

  it("reports a malformed kubelet YAML with its line", async () => {
    tree = await HostTree.create();
    await baseNode(tree);
    await tree.write(
      `${KUBELET_ROOT}/config.yaml`,
      "kind: KubeletConfiguration\nevictionHard:\n  nodefs.available: 10%\n   imagefs.available: [\n",
    );
    const snapshot = await collectTree(tree);
    const file = kubelet(snapshot).files[0];
    expect(file?.status).toBe("error");
    expect(file?.error?.line).toBeGreaterThanOrEqual(3);
    const finding = runChecks(snapshot).find((f) => f.id === "CONFIG_PARSE_ERROR");
    expect(finding?.remediation.commands).toContain("systemctl restart kubelet");
  });

  it("names the disk signals a partial evictionHard drops, and the imagefs left unwatched on a split node", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await writeKubeletConfig(tree, {
      evictionHard: { "memory.available": "200Mi", "nodefs.available": "10%" },
    });
    const findings = runChecks(await collectTree(tree));
    const dropped = findings.find((f) => f.id === "EVICTION_DEFAULTS_DROPPED");
    expect(dropped?.severity).toBe("warning");
    expect(dropped?.evidence).toContain(
      "no longer watched: nodefs.inodesFree, imagefs.available, imagefs.inodesFree",
    );
    expect(dropped?.remediation.commands).toContain('#     imagefs.available: "15%"');
    const unwatched = findings.find((f) => f.id === "EVICTION_IMAGEFS_UNWATCHED");
    expect(unwatched?.evidence.join("\n")).toContain(`imagefs ${IMAGESTORE}`);
  });

  it("reports the feature gate turned off on a split node", async () => {
    tree = await HostTree.create();
    await splitImageNode(tree);
    await startRuntime(tree, { imagestore: IMAGESTORE });
    await writeKubeletConfig(tree, { featureGates: { KubeletSeparateDiskGC: false } });
    const finding = runChecks(await collectTree(tree)).find((f) => f.id === "SPLIT_FEATURE_GATE_OFF");
    expect(finding?.severity).toBe("critical");
    expect(finding?.evidence[0]).toBe(`KubeletSeparateDiskGC=false (set in ${KUBELET_ROOT}/config.yaml)`);
  });
});
