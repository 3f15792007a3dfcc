import { runtimeService } from "../model/view.js";
import { contextType } from "../selinux/avc.js";
import type { Snapshot } from "../snapshot.js";
import type { SelinuxFacts, StoreLabels } from "../sources/selinux.js";
import { factsOf } from "../sources/source.js";
import type { CheckDefinition, FindingDraft, Severity } from "./finding.js";

const AREA = "selinux";

/** The store every other store's labels should follow (container.fc covers it). */
const GRAPHROOT_DEFAULT = "/var/lib/containers/storage";
/** restorecon leaves these alone unless -F (container-selinux adds container_file_t to customizable_types). */
const CUSTOMIZABLE = new Set(["container_file_t", "svirt_sandbox_file_t"]);

function selinux(snapshot: Snapshot): SelinuxFacts | undefined {
  return factsOf(snapshot.sources.selinux);
}

/** Label problems only hurt when SELinux enforces; with it off they are told, not raised. */
function labelSeverity(facts: SelinuxFacts, whenEnforcing: Severity): Severity {
  if (facts.state === "disabled") return "info";
  return facts.state === "permissive" && whenEnforcing === "critical" ? "warning" : whenEnforcing;
}

function stateLine(facts: SelinuxFacts): string {
  return facts.state === "disabled"
    ? "SELinux is disabled on this node: labels are not enforced today, but will be when it is enabled"
    : `SELinux is ${facts.state} (policy ${facts.policy.type})`;
}

/** Whether the policy already gives <store>/<driver> a container type (by an equivalence or its own lines). */
function policyLabelsLikeGraphroot(store: StoreLabels): boolean {
  return store.equivalence.expectedType?.startsWith("container_") ?? false;
}

/** The commands that give a store the labels of /var/lib/containers/storage and make containers use them. */
function relabelCommands(snapshot: Snapshot, store: StoreLabels, actualTypes: string[]): string[] {
  const graphroot = selinux(snapshot)?.graphroot ?? GRAPHROOT_DEFAULT;
  const force = actualTypes.some((type) => CUSTOMIZABLE.has(type)) ? " -F" : "";
  const commands = [];
  if (store.path !== graphroot && !policyLabelsLikeGraphroot(store)) {
    commands.push(`semanage fcontext -a -e ${graphroot} ${store.path}`);
  }
  commands.push(
    `restorecon -R -v${force} ${store.path}`,
    "# then restart the workloads that failed, so they run from relabelled files:",
    "crictl pods --state NotReady",
    `systemctl restart ${runtimeService(snapshot)}`,
  );
  return commands;
}

const disabled: CheckDefinition = {
  id: "SELINUX_DISABLED",
  severity: "info",
  title: "SELinux is disabled: label findings are informational",
  area: AREA,
  description:
    "SELinux is not enforcing on this node (disabled in /etc/selinux/config or in the kernel), so a wrong label " +
    "breaks nothing today. The label findings are still reported, as information: they become failures the day " +
    "SELinux is turned on, or when the store is moved to a node that enforces it.",
  confirm: ["getenforce", "grep ^SELINUX= /etc/selinux/config"],
  run(snapshot) {
    const facts = selinux(snapshot);
    if (facts?.state !== "disabled") return [];
    // A node without SELinux at all (AppArmor distributions) is not told about it, unless its labels are off.
    const labelsOff = facts.stores.some(
      (s) => s.dirs.some((d) => d.label !== null) || (s.scan?.mismatches.length ?? 0) > 0,
    );
    if (!facts.config.found && !facts.policy.loaded && !labelsOff) return [];
    return [
      {
        evidence: facts.stateEvidence,
        remediation: { summary: "Nothing to do unless SELinux is to be enabled.", commands: ["getenforce"] },
      },
    ];
  },
};

const storeMislabeled: CheckDefinition = {
  id: "SELINUX_STORE_MISLABELED",
  severity: "critical",
  title: "An image store root or its overlay directories carry the wrong SELinux type",
  area: AREA,
  description:
    "A store root (graphroot, the image store, an additional store, the kubelet root) or one of its overlay*/ " +
    "directories has another SELinux type than the policy expects, or than the same directory in graphroot. New " +
    "layers inherit the wrong type and containers die with 'cannot apply additional memory protection after " +
    "relocation: Permission denied'. This is the usual failure after moving the image store to a new disk.",
  confirm: ["ls -Zd <store> <store>/overlay*", "matchpathcon -V <store> <store>/overlay"],
  run(snapshot) {
    const facts = selinux(snapshot);
    const drafts: FindingDraft[] = [];
    for (const store of facts?.stores ?? []) {
      const wrong = store.dirs.filter(
        (dir) =>
          dir.label !== null &&
          (dir.expectedType ?? dir.referenceType) !== null &&
          contextType(dir.label) !== (dir.expectedType ?? dir.referenceType),
      );
      if (wrong.length === 0) continue;
      drafts.push({
        severity: labelSeverity(facts!, "critical"),
        subject: `${store.role} ${store.path}`,
        evidence: [
          stateLine(facts!),
          ...wrong.map(
            (dir) =>
              `${dir.path}: ${dir.label} — expected type ${dir.expectedType ?? dir.referenceType}` +
              `${dir.expectedType ? " (policy)" : ` (as in ${dir.referencePath})`}`,
          ),
        ],
        remediation: {
          summary: `Give ${store.path} the labels of ${facts!.graphroot} and restart the affected workloads.`,
          commands: relabelCommands(
            snapshot,
            store,
            wrong.map((d) => contextType(d.label!)),
          ),
        },
      });
    }
    return drafts;
  },
};

const layerFilesMislabeled: CheckDefinition = {
  id: "SELINUX_LAYER_FILES_MISLABELED",
  severity: "warning",
  title: "Files inside image layers carry the wrong SELinux type",
  area: AREA,
  description:
    "The label scan found files below a store's overlay directories whose type differs from the policy's (or " +
    "graphroot's) expectation: partial relabels, layers copied in with cp or rsync without -Z, or layers pulled " +
    "while the store's root had the wrong type. Counts are per (actual → expected) type pair; a budgeted scan is " +
    "marked as sampled. `imagefs-doctor selinux-scan <store>` scans a store fully.",
  confirm: ["imagefs-doctor selinux-scan <store>", "restorecon -R -n -v <store> | head"],
  run(snapshot) {
    const facts = selinux(snapshot);
    const drafts: FindingDraft[] = [];
    for (const store of facts?.stores ?? []) {
      const scan = store.scan;
      if (!scan || scan.mismatches.length === 0) continue;
      const total = scan.mismatches.reduce((sum, m) => sum + m.count, 0);
      drafts.push({
        severity: labelSeverity(facts!, "warning"),
        subject: `${store.role} ${store.path}`,
        title: `${total} files in ${store.path} carry the wrong SELinux type`,
        evidence: [
          stateLine(facts!),
          `${scan.filesChecked} files checked in ${scan.elapsedMs} ms${scan.sampled ? " (sampled: the scan budget ended first)" : ""}`,
          ...scan.mismatches.map(
            (m) => `${m.count} × ${m.actual} → ${m.expected} (${m.basis}), e.g. ${m.samples.join(", ")}`,
          ),
        ],
        remediation: {
          summary: `Relabel ${store.path} and restart the affected workloads.`,
          commands: relabelCommands(
            snapshot,
            store,
            scan.mismatches.map((m) => m.actual),
          ),
        },
      });
    }
    return drafts;
  },
};

const equivalenceMissing: CheckDefinition = {
  id: "SELINUX_EQUIVALENCE_MISSING",
  severity: "warning",
  title: "No SELinux equivalence rule for the image store: the next relabel will break it",
  area: AREA,
  description:
    "The policy has no rule that labels this store like /var/lib/containers/storage: no `semanage fcontext -e` " +
    "equivalence in file_contexts.subs, or one that leads the store to a path without container types. Even if " +
    "its labels are right today, the next restorecon, an autorelabel or a policy update gives it var_lib_t or " +
    "default_t, and containers stop starting.",
  confirm: ["semanage fcontext -l | grep -A3 Equivalence", "matchpathcon <store>/overlay"],
  run(snapshot) {
    const facts = selinux(snapshot);
    if (!facts?.policy.loaded) return [];
    const drafts: FindingDraft[] = [];
    for (const store of facts.stores) {
      const relocated = store.role === "imagestore" || store.role === "additional-image-store";
      if (!relocated || policyLabelsLikeGraphroot(store)) continue;
      const expected = store.equivalence.expectedType;
      const via = store.equivalence.via;
      drafts.push({
        severity: labelSeverity(facts, "warning"),
        subject: store.path,
        evidence: [
          stateLine(facts),
          `policy label for ${store.path}/overlay: ${expected ?? "none"}; container_ro_file_t is needed`,
          via
            ? `the lookup of ${store.path} goes through ${via}, which does not lead to ${facts.graphroot}'s labels`
            : `no line of file_contexts.subs or file_contexts.subs_dist maps ${store.path} to another path`,
        ],
        remediation: {
          summary: `Add an equivalence so ${store.path} is labelled like ${facts.graphroot}, then relabel it.`,
          commands: [
            `semanage fcontext -a -e ${facts.graphroot} ${store.path}`,
            `restorecon -R -v ${store.path}`,
          ],
        },
      });
    }
    return drafts;
  },
};

const avcDenials: CheckDefinition = {
  id: "SELINUX_AVC_STORAGE_DENIALS",
  severity: "critical",
  title: "SELinux denied containers access to files with store-ish labels",
  area: AREA,
  description:
    "AVC records show container processes denied read, map or execute on files labelled unlabeled_t, default_t, " +
    "var_lib_t and the like: the typical trace of image layers that did not get container labels. The path in the " +
    "record is the container's view; dev and ino name the host file, which the label scan maps back when it can.",
  confirm: [
    "ausearch -m AVC -ts recent | grep container_t",
    "journalctl _TRANSPORT=audit _AUDIT_TYPE_NAME=AVC --since -1h",
  ],
  run(snapshot) {
    const avc = factsOf(snapshot.sources.avc);
    if (!avc || avc.storageDenials.length === 0) return [];
    const facts = selinux(snapshot);
    const mapped = facts?.avcPaths ?? [];
    const allPermissive = avc.storageDenials.every((g) => g.permissive);
    const evidence = avc.storageDenials.map(
      (g) =>
        `${g.count} × ${g.sourceType} denied { ${g.permissions.join(" ")} } on ${g.tclass} ${g.targetType}` +
        `${g.permissive ? " (permissive: logged, not blocked)" : ""}, last ${g.lastSeen ?? "unknown"}, e.g. ` +
        g.samples
          .map((s) => `${s.comm ?? "?"}: ${s.path ?? "?"} (dev ${s.dev ?? "?"} ino ${s.ino ?? "?"})`)
          .join("; "),
    );
    for (const hit of mapped) evidence.push(`dev ${hit.dev} ino ${hit.ino} is ${hit.hostPath} on the host`);
    const stores = facts?.stores.filter((s) => s.role !== "kubelet-root") ?? [];
    return [
      {
        severity: allPermissive ? "warning" : "critical",
        evidence,
        remediation: {
          summary:
            "Relabel the image stores the denied files live in (not the paths printed in the records: they are the " +
            "container's view), then restart the affected workloads.",
          commands:
            stores.length > 0
              ? stores
                  .flatMap((s) => relabelCommands(snapshot, s, []))
                  .filter((c, i, all) => all.indexOf(c) === i)
              : ["ausearch -m AVC -ts recent"],
        },
      },
    ];
  },
};

const relocationDenied: CheckDefinition = {
  id: "RELOCATION_PERMISSION_DENIED",
  severity: "critical",
  title: "Containers fail to load their own libraries: Permission denied",
  area: AREA,
  description:
    "Container logs show the dynamic loader refused: 'cannot apply additional memory protection after relocation: " +
    "Permission denied' (glibc), 'RELRO protection failed' (musl), or shared objects that cannot be mapped or " +
    "opened. On an SELinux node this is the image layers' labels: the container may read but not map its libc.",
  confirm: ["grep -r 'after relocation: Permission denied' /var/log/pods | head"],
  run(snapshot) {
    const logs = factsOf(snapshot.sources["pod-logs"]);
    if (!logs || logs.errors.length === 0) return [];
    const facts = selinux(snapshot);
    const pods = [...new Set(logs.errors.map((e) => `${e.namespace}/${e.pod}`))];
    const stores = facts?.stores.filter((s) => s.role !== "kubelet-root" && s.role !== "graphroot") ?? [];
    return [
      {
        severity: facts?.state === "disabled" ? "warning" : "critical",
        title:
          pods.length === 1
            ? "1 pod fails to load its libraries: Permission denied"
            : `${pods.length} pods fail to load their libraries: Permission denied`,
        evidence: [
          ...(facts ? [stateLine(facts)] : []),
          ...logs.errors.map(
            (e) =>
              `${e.namespace}/${e.pod} container ${e.container}: ${e.count} × ${e.kind}, last ${e.lastSeen}: ${e.example}`,
          ),
        ],
        remediation: {
          summary:
            "Relabel the image stores, then delete the failing pods so they start again from relabelled layers.",
          commands: [
            ...stores.flatMap((s) => relabelCommands(snapshot, s, []).slice(0, -3)),
            ...pods.map((pod) => `kubectl delete pod -n ${pod.split("/")[0]} ${pod.split("/")[1]}`),
          ],
        },
      },
    ];
  },
};

const relabelFailed: CheckDefinition = {
  id: "SELINUX_RELABEL_FAILED",
  severity: "warning",
  title: "SELinux relabelling failed",
  area: AREA,
  description:
    "restorecon, chcon, semanage or the container runtime logged relabel failures (log rule pack selinux-relabel): " +
    "'Operation not supported' means a filesystem without SELinux labels (NFS, vfat) that needs a context= mount " +
    "option; read-only filesystems and refused system paths have their own reasons.",
  confirm: ["journalctl -t restorecon -t chcon -t semanage -u crio --since -1d | grep -iE 'context|relabel'"],
  run(snapshot) {
    const journal = factsOf(snapshot.sources.journal);
    const counts = journal?.counts.filter((c) => c.pack === "selinux-relabel") ?? [];
    if (counts.length === 0) return [];
    const notSupported = counts.some((c) => c.reason === "RelabelNotSupported");
    return [
      {
        evidence: counts.map(
          (c) => `${c.count} × ${c.reason} from ${c.unit} (${c.firstSeen} to ${c.lastSeen}): ${c.example}`,
        ),
        remediation: {
          summary: notSupported
            ? "Mount filesystems that cannot hold labels with a context= option (see SELINUX_NO_XATTR_SUPPORT), or keep stores on ext4/xfs."
            : "Read the messages: fix the read-only mount or the refused path, then relabel again.",
          commands: [
            "journalctl -t restorecon -t chcon -t semanage --since -1d",
            "findmnt -o TARGET,FSTYPE,OPTIONS",
          ],
        },
      },
    ];
  },
};

const noXattrSupport: CheckDefinition = {
  id: "SELINUX_NO_XATTR_SUPPORT",
  severity: "critical",
  title: "An image store is on a filesystem that cannot hold SELinux labels",
  area: AREA,
  description:
    "Reading security.selinux on the store fails with 'Operation not supported' (vfat, ramfs), or the store is on " +
    "NFS, CIFS or FUSE mounted without context= and without seclabel (NFS 4.2 security labels): judged from the " +
    "mount options, as such a mount is never walked. Its files are then nfs_t or fusefs_t, and containers run from " +
    "the store are denied reading their own files. restorecon and chcon cannot fix that: the whole mount needs one label, given " +
    'with the context= mount option, e.g. context="system_u:object_r:container_ro_file_t:s0" for a shared ' +
    "read-only image store.",
  confirm: ["getfattr -n security.selinux <store>", "findmnt -o TARGET,FSTYPE,OPTIONS --target <store>"],
  run(snapshot) {
    const facts = selinux(snapshot);
    const drafts: FindingDraft[] = [];
    for (const store of facts?.stores ?? []) {
      if (store.xattrSupported !== false) continue;
      const type =
        store.role === "graphroot" || store.role === "kubelet-root"
          ? "container_var_lib_t"
          : "container_ro_file_t";
      const context = `system_u:object_r:${type}:s0`;
      // An additional image store is read-only to the runtime: mount it so, with the label for that.
      const options = `${store.role === "additional-image-store" ? "ro," : ""}context="${context}"`;
      const mountPoint = store.mountPoint ?? store.path;
      // mount(8) cannot mount FUSE ("-t fuse" needs type#source): its server mounts it, so that is where the option goes.
      const fuse = store.fstype === "fuse" || (store.fstype?.startsWith("fuse.") ?? false);
      const remount = fuse
        ? [
            `fusermount -u ${mountPoint}`,
            `# start the FUSE server that mounts ${mountPoint} again with -o ${options} added to its options`,
          ]
        : [
            `umount ${mountPoint}`,
            `mount ${store.fstype ? `-t ${store.fstype} ` : ""}-o ${options} ${store.mountSource ?? "<source>"} ${mountPoint}`,
          ];
      drafts.push({
        severity: labelSeverity(facts!, "critical"),
        subject: `${store.role} ${store.path}`,
        evidence: [
          stateLine(facts!),
          `${store.path} is on ${store.fstype ?? "a filesystem"} without SELinux label support: ${store.reason ?? "ENOTSUP"}`,
        ],
        remediation: {
          summary: fuse
            ? `Unmount ${mountPoint} and start its FUSE server again with -o context="${context}" (in its unit or command line for a permanent fix), then restart ${runtimeService(snapshot)}.`
            : `Mount ${store.path} with context="${context}" (in /etc/fstab for a permanent fix), then restart ${runtimeService(snapshot)}.`,
          commands: [
            `findmnt --target ${store.path}`,
            ...remount,
            `ls -Zd ${store.path}`,
            `systemctl restart ${runtimeService(snapshot)}`,
          ],
        },
      });
    }
    return drafts;
  },
};

export const selinuxChecks: CheckDefinition[] = [
  storeMislabeled,
  layerFilesMislabeled,
  equivalenceMissing,
  avcDenials,
  relocationDenied,
  relabelFailed,
  noXattrSupport,
  disabled,
];
