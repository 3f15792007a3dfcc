import { isWithin } from "../host/mountinfo.js";
import {
  describeMount,
  filesystemFacts,
  kubeletFacts,
  mountUnitName,
  role,
  runtimeKind,
  runtimeService,
  storageFacts,
} from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { FilesystemRoleFact, FilesystemsFacts } from "../sources/filesystems.js";
import type { CheckDefinition, FindingDraft } from "./finding.js";

const AREA = "split image filesystem";

function imagestoreSetting(snapshot: Snapshot) {
  if (runtimeKind(snapshot) === "containerd") return undefined;
  const setting = storageFacts(snapshot)?.containersStorage.imagestore;
  return setting?.value ? { path: setting.value, from: setting.from } : undefined;
}

/** fstab lines that would mount something at or above the path: the disk someone meant to be there. */
function fstabFor(facts: FilesystemsFacts, path: string) {
  return facts.fstab.filter((entry) => isWithin(path, entry.mountPoint));
}

function mountCommands(facts: FilesystemsFacts, path: string, service: string): string[] {
  const entry = fstabFor(facts, path).at(-1);
  const commands = entry
    ? [`mount ${entry.mountPoint}`, `systemctl status ${mountUnitName(entry.mountPoint)}`]
    : ["lsblk -f", `mount /dev/<disk> ${path}`, `echo '/dev/<disk> ${path} xfs defaults 0 0' >> /etc/fstab`];
  return [`systemctl stop ${service}`, ...commands, `findmnt --target ${path}`, `systemctl start ${service}`];
}

const imagestoreNotMounted: CheckDefinition = {
  id: "IMAGESTORE_NOT_MOUNTED",
  severity: "critical",
  title: "The image store's disk is not mounted",
  area: AREA,
  description:
    "imagestore is configured, but its path does not exist or lies on the root filesystem instead of the disk meant " +
    "for images. New images then fill the operating system's disk, and the kubelet sees no separate image filesystem.",
  confirm: ["findmnt --target <imagestore>", "grep <imagestore> /etc/fstab"],
  run(snapshot) {
    const store = imagestoreSetting(snapshot);
    const facts = filesystemFacts(snapshot);
    const imagefs = role(facts, "imagefs");
    if (!store || !facts || !imagefs) return [];
    const service = runtimeService(snapshot);
    const fstab = fstabFor(facts, store.path).map(
      (e) => `/etc/fstab mounts ${e.spec} (${e.fstype}) at ${e.mountPoint}, but that mount is not active`,
    );
    if (imagefs.status === "missing") {
      return [
        {
          subject: store.path,
          evidence: [
            `imagestore = ${store.path} (set in ${store.from})`,
            `${store.path} does not exist`,
            ...fstab,
          ],
          remediation: {
            summary: `Mount the disk meant for images at ${store.path} before ${service} starts, then restart ${service}.`,
            commands: mountCommands(facts, store.path, service),
          },
        },
      ];
    }
    if (imagefs.status !== "ok" || imagefs.device !== facts.rootDevice || imagefs.isMountPoint) return [];
    return [
      {
        subject: store.path,
        title: "The image store is on the root filesystem, not on its own disk",
        evidence: [
          `imagestore = ${store.path} (set in ${store.from})`,
          `${store.path} is on the root filesystem: ${describeMount(imagefs)}, device ${imagefs.device}`,
          ...fstab,
        ],
        remediation: {
          summary:
            `Mount the disk meant for images at ${store.path}. Images pulled while it was unmounted stay hidden ` +
            "under the mount point and keep using the root disk; move or delete them after mounting.",
          commands: mountCommands(facts, store.path, service),
        },
      },
    ];
  },
};

const imagestoreSameDevice: CheckDefinition = {
  id: "IMAGESTORE_SAME_DEVICE",
  severity: "warning",
  title: "The image store is on the same filesystem as graphroot",
  area: AREA,
  description:
    "imagestore is set, but it lands on the filesystem that also holds graphroot (the writable layers). The split " +
    "does nothing: images and containers still compete for one disk, and the kubelet sees a single filesystem.",
  confirm: ["stat -c '%d %n' <imagestore> <graphroot>", "findmnt --target <imagestore>"],
  run(snapshot) {
    const store = imagestoreSetting(snapshot);
    const facts = filesystemFacts(snapshot);
    const imagefs = role(facts, "imagefs");
    const containerfs = role(facts, "containerfs");
    if (!store || !facts || imagefs?.status !== "ok" || containerfs?.status !== "ok") return [];
    if (imagefs.device !== containerfs.device) return [];
    if (imagefs.device === facts.rootDevice && !imagefs.isMountPoint) return []; // IMAGESTORE_NOT_MOUNTED says it
    return [
      {
        subject: store.path,
        evidence: [
          `imagestore = ${store.path} (set in ${store.from}) is on ${describeMount(imagefs)}, device ${imagefs.device}`,
          `graphroot = ${containerfs.path} is on ${describeMount(containerfs)}, device ${containerfs.device}`,
        ],
        remediation: {
          summary: `Mount a separate disk at ${store.path} (or point imagestore at one), then restart ${runtimeService(snapshot)}.`,
          commands: mountCommands(facts, store.path, runtimeService(snapshot)),
        },
      },
    ];
  },
};

const splitFeatureGateOff: CheckDefinition = {
  id: "SPLIT_FEATURE_GATE_OFF",
  severity: "critical",
  title: "Images are split from writable layers but KubeletSeparateDiskGC is off",
  area: AREA,
  description:
    "The runtime keeps images and writable layers on different filesystems, but the kubelet's KubeletSeparateDiskGC " +
    "feature gate is off. The kubelet then treats containerfs as imagefs: container garbage collection targets the " +
    "wrong disk and the writable-layer filesystem grows unchecked (KEP-4191).",
  confirm: ["journalctl -u kubelet -b | grep -i 'KubeletSeparateDiskGC'", "crictl imagefsinfo"],
  run(snapshot) {
    const facts = filesystemFacts(snapshot);
    const gate = kubeletFacts(snapshot)?.separateDiskGC;
    if (facts?.topology !== "split-image" || gate?.value !== false) return [];
    const imagefs = role(facts, "imagefs")!;
    const containerfs = role(facts, "containerfs")!;
    return [
      {
        evidence: [
          `KubeletSeparateDiskGC=false (set in ${gate.from})`,
          `imagefs ${imagefs.path} on device ${imagefs.device}; containerfs ${containerfs.path} on device ${containerfs.device}`,
        ],
        remediation: {
          summary:
            "Turn the feature gate on (it is on by default since Kubernetes 1.31), or undo the split in the runtime " +
            "first, restart it, and only then restart the kubelet with the gate off.",
          commands: [
            `# in ${gate.from}: featureGates: {KubeletSeparateDiskGC: true}`,
            "systemctl restart kubelet",
            "journalctl -u kubelet | grep -i 'split'",
          ],
        },
      },
    ];
  },
};

const layoutUnsupported: CheckDefinition = {
  id: "SPLIT_LAYOUT_UNSUPPORTED",
  severity: "warning",
  title: "The filesystem layout is one the kubelet does not support",
  area: AREA,
  description:
    "KEP-4191 supports one disk, a separate runtime disk, or images split from writable layers that stay with the " +
    "kubelet. Writable layers on a third disk are not watched by any eviction signal the kubelet derives.",
  confirm: ["findmnt --target /var/lib/kubelet", "crictl imagefsinfo"],
  run(snapshot) {
    const facts = filesystemFacts(snapshot);
    if (facts?.topology !== "three-way" && facts?.topology !== "containerfs-only") return [];
    const lines = ["nodefs", "imagefs", "containerfs"].map((name) => {
      const fact = role(facts, name as "nodefs") as FilesystemRoleFact;
      return `${name} ${fact.path}: device ${fact.device}`;
    });
    return [
      {
        subject: facts.topology,
        evidence: [`layout: ${facts.topology}`, ...lines],
        remediation: {
          summary:
            "Keep graphroot (writable layers) on the kubelet's filesystem and move only images with imagestore.",
          commands: [
            `findmnt --target ${role(facts, "containerfs")!.path}`,
            `findmnt --target ${role(facts, "nodefs")!.path}`,
          ],
        },
      },
    ];
  },
};

const storeReadOnly: CheckDefinition = {
  id: "STORE_READ_ONLY",
  severity: "critical",
  title: "A writable store is on a read-only mount",
  area: AREA,
  description:
    "graphroot, the image store, the runroot or the kubelet root is on a filesystem mounted read-only (by choice or " +
    "because the kernel remounted it after errors). Pulls, container creation and pod start-up fail.",
  confirm: ["findmnt -o TARGET,OPTIONS --target <store>", "journalctl -k -b | grep -i 'remount'"],
  run(snapshot) {
    const facts = filesystemFacts(snapshot);
    const writable = ["nodefs", "imagefs", "containerfs", "runroot"];
    const seen = new Set<string>();
    const drafts: FindingDraft[] = [];
    for (const fact of facts?.roles ?? []) {
      if (
        !writable.includes(fact.role) ||
        fact.status !== "ok" ||
        !fact.mount?.readOnly ||
        seen.has(fact.path)
      )
        continue;
      seen.add(fact.path);
      drafts.push({
        subject: `${fact.role} ${fact.path}`,
        evidence: [
          `${fact.role} ${fact.path} is on ${describeMount(fact)} with options ${fact.mount.options.join(",")}`,
        ],
        remediation: {
          summary:
            "Find out why the filesystem is read-only (kernel errors remount it so), repair it, and remount it read-write.",
          commands: [
            `journalctl -k | grep -iE 'remount|error' | tail -20`,
            `mount -o remount,rw ${fact.mount.mountPoint}`,
            `systemctl restart ${runtimeService(snapshot)}`,
          ],
        },
      });
    }
    return drafts;
  },
};

/** Additional image stores have IMAGE_STORE_UNAVAILABLE, which knows their mounts and content. */
function reportedHere(snapshot: Snapshot): FilesystemRoleFact[] {
  return (filesystemFacts(snapshot)?.roles ?? []).filter((fact) => fact.role !== "additional-image-store");
}

const storeUnresponsive: CheckDefinition = {
  id: "STORE_UNRESPONSIVE",
  severity: "critical",
  title: "A store's filesystem does not answer",
  area: AREA,
  description:
    "A stat of a configured store did not return within the deadline: its FUSE or network filesystem hangs. Every " +
    "runtime operation that touches it (pulls, container start, image listing) hangs too.",
  confirm: ["timeout 5 stat -f <store> || echo hung", "cat /sys/fs/fuse/connections/*/waiting"],
  run(snapshot) {
    return reportedHere(snapshot)
      .filter((fact) => fact.status === "unresponsive")
      .map((fact) => ({
        subject: `${fact.role} ${fact.path}`,
        evidence: [
          `${fact.role} ${fact.path} (${fact.configuredBy})`,
          fact.error ?? "no answer",
          fact.mount ? describeMount(fact) : "",
        ].filter(Boolean),
        remediation: {
          summary:
            "Find the server process behind the mount; restart it, or unmount the dead mount lazily and remount.",
          commands: fact.mount
            ? [
                `findmnt ${fact.mount.mountPoint}`,
                `umount -l ${fact.mount.mountPoint}`,
                `systemctl restart ${runtimeService(snapshot)}`,
              ]
            : [`findmnt --target ${fact.path}`],
        },
      }));
  },
};

const storePathUnusable: CheckDefinition = {
  id: "STORE_PATH_UNUSABLE",
  severity: "warning",
  title: "A configured store path cannot be examined",
  area: AREA,
  description:
    "Looking up a configured store path failed for a reason other than its absence: a symlink loop, a permission " +
    "error, a dead FUSE connection. The runtime most likely fails on it in the same way.",
  confirm: ["namei -l <store>"],
  run(snapshot) {
    return reportedHere(snapshot)
      .filter((fact) => fact.status === "error")
      .map((fact) => ({
        subject: `${fact.role} ${fact.path}`,
        evidence: [`${fact.role} ${fact.path} (${fact.configuredBy})`, fact.error ?? "unknown error"],
        remediation: {
          summary: "Look at the path as the runtime would and fix the link or permission that breaks it.",
          commands: [`namei -l ${fact.path}`, `findmnt --target ${fact.path}`],
        },
      }));
  },
};

export const splitfsChecks: CheckDefinition[] = [
  imagestoreNotMounted,
  imagestoreSameDevice,
  splitFeatureGateOff,
  layoutUnsupported,
  storeReadOnly,
  storeUnresponsive,
  storePathUnusable,
];
