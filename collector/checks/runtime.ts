import path from "node:path";
import {
  criFacts,
  filesystemFacts,
  kubeletFacts,
  role,
  runtimeKind,
  runtimeService,
  storageFacts,
} from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { CriFilesystem } from "../sources/cri.js";
import type { CheckDefinition } from "./finding.js";

const AREA = "container runtime";

const runtimeUnreachable: CheckDefinition = {
  id: "RUNTIME_UNREACHABLE",
  severity: "critical",
  title: "No container runtime answers on its CRI socket",
  area: AREA,
  description:
    "No CRI endpoint (the kubelet's, CRI-O's or containerd's) answered Version and ImageFsInfo within the deadline. " +
    "The kubelet cannot start or inspect containers, and the node goes NotReady.",
  confirm: ["crictl version", "systemctl status crio containerd"],
  run(snapshot) {
    const cri = criFacts(snapshot);
    if (!cri || cri.answeredBy) return [];
    const expected =
      kubeletFacts(snapshot) !== undefined || storageFacts(snapshot)?.runtimeGuess.kind !== "unknown";
    const service = runtimeService(snapshot);
    return [
      {
        severity: expected ? "critical" : "info",
        title: expected ? undefined : "No container runtime found on this host",
        evidence: cri.attempts.map(
          (a) => `${a.endpoint} (${a.reason}): ${a.status}${a.error ? ` - ${a.error}` : ""}`,
        ),
        remediation: {
          summary: `Check that ${service} is running and listening where the kubelet expects it.`,
          commands: [`systemctl status ${service}`, `journalctl -u ${service} --since -15min | tail -50`],
        },
      },
    ];
  },
};

/** What the runtime should report for the current configuration (cri-o server/image_fs_info.go; containerd snapshotter root). */
function expectedMountpoints(snapshot: Snapshot): { image: string; container: string | null } | undefined {
  const storage = storageFacts(snapshot);
  if (!storage) return undefined;
  if (runtimeKind(snapshot) === "containerd") {
    return storage.containerd
      ? { image: storage.containerd.snapshotterRoot.value, container: null }
      : undefined;
  }
  // Without an imagestore CRI-O names <graphroot>/<driver>-images in both lists.
  const cs = storage.containersStorage;
  const driver = cs.driver.value;
  const image = path.posix.join(cs.imagestore.value ?? cs.graphroot.value, `${driver}-images`);
  return {
    image,
    container: cs.imagestore.value ? path.posix.join(cs.graphroot.value, `${driver}-containers`) : image,
  };
}

function compare(
  kind: string,
  reported: CriFilesystem | undefined,
  expected: string,
  configuredDevice?: string,
) {
  if (!reported) return [];
  const lines: string[] = [];
  if (path.posix.normalize(reported.mountpoint) !== path.posix.normalize(expected)) {
    lines.push(
      `runtime reports its ${kind} filesystem at ${reported.mountpoint}; the configuration says ${expected}`,
    );
  } else if (reported.device && configuredDevice && reported.device !== configuredDevice) {
    lines.push(
      `${kind} filesystem ${reported.mountpoint} is on device ${reported.device}; the configured store is on ${configuredDevice}`,
    );
  }
  return lines;
}

const criImagefsMismatch: CheckDefinition = {
  id: "CRI_IMAGEFS_MISMATCH",
  severity: "warning",
  title: "The runtime reports other image or container filesystems than its configuration",
  area: AREA,
  description:
    "What the runtime reports over CRI ImageFsInfo (and CRI-O's /info) differs from what its configuration files say " +
    "now: the configuration was changed without restarting the runtime, or a flag or drop-in overrides it. The kubelet " +
    "follows the runtime, so garbage collection and eviction watch the old location.",
  confirm: ["crictl imagefsinfo", "curl -s --unix-socket /var/run/crio/crio.sock http://localhost/info"],
  run(snapshot) {
    const cri = criFacts(snapshot);
    const expected = expectedMountpoints(snapshot);
    if (!cri?.answeredBy || !expected) return [];
    const fs = filesystemFacts(snapshot);
    const evidence = [
      ...compare("image", cri.imageFilesystems[0], expected.image, role(fs, "imagefs")?.device),
      ...(expected.container && cri.containerFilesystems.length > 0
        ? compare(
            "container",
            cri.containerFilesystems[0],
            expected.container,
            role(fs, "containerfs")?.device,
          )
        : []),
    ];
    const info = cri.crioInfo;
    const cs = storageFacts(snapshot)?.containersStorage;
    if (info && cs) {
      if (info.storageRoot && info.storageRoot !== cs.graphroot.value) {
        evidence.push(
          `CRI-O /info storage_root is ${info.storageRoot}; graphroot is configured as ${cs.graphroot.value} (${cs.graphroot.from})`,
        );
      }
      const runningImageStore = info.storageImage || null;
      if (info.storageImage !== null && runningImageStore !== cs.imagestore.value) {
        evidence.push(
          `CRI-O /info storage_image is ${runningImageStore ?? "(none)"}; imagestore is configured as ${cs.imagestore.value ?? "(none)"} (${cs.imagestore.from})`,
        );
      }
    }
    if (evidence.length === 0) return [];
    const service = runtimeService(snapshot);
    return [
      {
        evidence: [
          `runtime: ${cri.runtime?.name ?? "unknown"} ${cri.runtime?.version ?? ""} at ${cri.answeredBy.endpoint}`,
          ...evidence,
        ],
        remediation: {
          summary: `Restart ${service} so it uses the configured stores, then restart the kubelet so it re-detects the layout.`,
          commands: [`systemctl restart ${service}`, "crictl imagefsinfo", "systemctl restart kubelet"],
        },
      },
    ];
  },
};

export const runtimeChecks: CheckDefinition[] = [runtimeUnreachable, criImagefsMismatch];
