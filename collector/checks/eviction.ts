import { DEFAULT_EVICTION_HARD, type Threshold } from "../model/eviction.js";
import { filesystemFacts, kubeletFacts, layout } from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { CheckDefinition } from "./finding.js";

const AREA = "eviction";

/** Where to change the kubelet's configuration, and how to make it take effect. */
function kubeletConfigTarget(snapshot: Snapshot): { file: string; openshift: boolean } {
  const facts = kubeletFacts(snapshot);
  const file = facts?.configFile?.path ?? "/var/lib/kubelet/config.yaml";
  return {
    file,
    openshift:
      facts?.dropInDir === "/etc/openshift/kubelet.conf.d" || file === "/etc/kubernetes/kubelet.conf",
  };
}

function applyKubeletChange(snapshot: Snapshot, yamlLines: string[]): string[] {
  const { file, openshift } = kubeletConfigTarget(snapshot);
  if (openshift) {
    return [
      "# OpenShift renders the kubelet configuration: change it with a KubeletConfig resource, e.g.",
      "oc edit kubeletconfig <name>   # spec.kubeletConfig:",
      ...yamlLines.map((line) => `#   ${line}`),
    ];
  }
  return [`# in ${file}:`, ...yamlLines.map((line) => `#   ${line}`), "systemctl restart kubelet"];
}

const defaultsDropped: CheckDefinition = {
  id: "EVICTION_DEFAULTS_DROPPED",
  severity: "warning",
  title: "evictionHard replaced the kubelet's defaults: some signals are no longer watched",
  area: AREA,
  description:
    "Setting evictionHard replaces all of the kubelet's default hard thresholds unless mergeDefaultEvictionSettings " +
    "is true (Kubernetes 1.33+). Every default signal left out is no longer watched at all: its disk can fill up " +
    "without the kubelet ever evicting a pod or reporting DiskPressure.",
  confirm: ["kubectl get --raw /api/v1/nodes/$(hostname)/proxy/configz | jq .kubeletconfig.evictionHard"],
  run(snapshot) {
    const eviction = kubeletFacts(snapshot)?.eviction;
    if (!eviction || eviction.defaultsDropped.length === 0) return [];
    const configured = Object.entries(eviction.configuredHard ?? {}).map(
      ([signal, value]) => `${signal}: "${value}"`,
    );
    const origin = [...new Set(eviction.hard.filter((t) => t.from !== "kubelet default").map((t) => t.from))];
    const restored = eviction.defaultsDropped.map(
      (signal) => `  ${signal}: "${DEFAULT_EVICTION_HARD[signal]}"`,
    );
    const diskDropped = eviction.defaultsDropped.some((s) => !s.startsWith("memory."));
    return [
      {
        severity: diskDropped ? "warning" : "info",
        evidence: [
          `evictionHard is set${origin.length > 0 ? ` in ${origin.join(", ")}` : ""}: {${configured.join(", ")}}`,
          "mergeDefaultEvictionSettings is not true, so the defaults are replaced, not merged",
          `no longer watched: ${eviction.defaultsDropped.join(", ")}`,
        ],
        remediation: {
          summary:
            "List every signal you want in evictionHard (the dropped defaults are shown), or set " +
            "mergeDefaultEvictionSettings: true on Kubernetes 1.33 or later.",
          commands: applyKubeletChange(snapshot, ["evictionHard:", ...restored]),
        },
      },
    ];
  },
};

function hasImagefsThreshold(thresholds: Threshold[], resource: string): boolean {
  return thresholds.some((t) => t.signal === `imagefs.${resource}`);
}

const imagefsUnwatched: CheckDefinition = {
  id: "EVICTION_IMAGEFS_UNWATCHED",
  severity: "warning",
  title: "The image filesystem is on its own disk but no imagefs threshold watches it",
  area: AREA,
  description:
    "The kubelet sees a dedicated image filesystem, but its effective configuration has no imagefs.available or " +
    "imagefs.inodesFree threshold (dropped from evictionHard or disabled with 0%). That disk can fill up without " +
    "DiskPressure: pulls then fail on the node while the scheduler keeps sending pods.",
  confirm: [
    "kubectl get --raw /api/v1/nodes/$(hostname)/proxy/configz | jq .kubeletconfig.evictionHard",
    "crictl imagefsinfo",
  ],
  run(snapshot) {
    const facts = filesystemFacts(snapshot);
    const eviction = kubeletFacts(snapshot)?.eviction;
    if (!facts || !eviction || !layout(facts).dedicatedImageFs) return [];
    const thresholds = [...eviction.hard, ...eviction.soft];
    const missing = ["available", "inodesFree"].filter(
      (resource) => !hasImagefsThreshold(thresholds, resource),
    );
    if (missing.length === 0) return [];
    const imagefs = facts.roles.find((r) => r.role === "imagefs")!;
    return [
      {
        evidence: [
          `imagefs ${imagefs.path} is on device ${imagefs.device}, apart from nodefs (layout: ${facts.topology})`,
          ...missing.map((resource) =>
            eviction.disabled.includes(`imagefs.${resource}`)
              ? `imagefs.${resource} is disabled (0% or 100%)`
              : `imagefs.${resource} has no hard or soft threshold`,
          ),
        ],
        remediation: {
          summary: "Add imagefs thresholds to evictionHard.",
          commands: applyKubeletChange(snapshot, [
            "evictionHard:",
            ...missing.map((r) => `  imagefs.${r}: "${DEFAULT_EVICTION_HARD[`imagefs.${r}`]}"`),
          ]),
        },
      },
    ];
  },
};

const thresholdInvalid: CheckDefinition = {
  id: "EVICTION_THRESHOLD_INVALID",
  severity: "critical",
  title: "An eviction threshold is invalid: the kubelet will not start with it",
  area: AREA,
  description:
    "A threshold value is not a quantity or percentage, or a soft threshold has no grace period. The kubelet refuses " +
    "the configuration at start-up.",
  confirm: ["journalctl -u kubelet -b | grep -i eviction"],
  run(snapshot) {
    const eviction = kubeletFacts(snapshot)?.eviction;
    if (!eviction || eviction.invalid.length === 0) return [];
    return [
      {
        evidence: eviction.invalid.map((item) => `${item.signal}: "${item.raw}": ${item.reason}`),
        remediation: {
          summary:
            'Fix the values (for example "10%" or "1Gi") and give every evictionSoft signal a grace period.',
          commands: applyKubeletChange(snapshot, ["evictionSoftGracePeriod:", '  nodefs.available: "1m30s"']),
        },
      },
    ];
  },
};

const containerfsIgnored: CheckDefinition = {
  id: "EVICTION_CONTAINERFS_IGNORED",
  severity: "info",
  title: "containerfs thresholds are set but the kubelet ignores them",
  area: AREA,
  description:
    "The kubelet derives containerfs thresholds from nodefs or imagefs and overwrites any containerfs.* value in the " +
    "configuration (it logs 'found conflicting containerfs eviction. Ignoring.').",
  confirm: ["journalctl -u kubelet -b | grep -i 'conflicting containerfs'"],
  run(snapshot) {
    const eviction = kubeletFacts(snapshot)?.eviction;
    if (!eviction || eviction.ignoredContainerfs.length === 0) return [];
    return [
      {
        evidence: [`set but ignored: ${eviction.ignoredContainerfs.join(", ")}`],
        remediation: {
          summary:
            "Remove the containerfs.* keys; set nodefs.* (split images) or imagefs.* (separate runtime disk) instead.",
          commands: applyKubeletChange(snapshot, ["# remove containerfs.* from evictionHard / evictionSoft"]),
        },
      },
    ];
  },
};

export const evictionChecks: CheckDefinition[] = [
  defaultsDropped,
  imagefsUnwatched,
  thresholdInvalid,
  containerfsIgnored,
];
