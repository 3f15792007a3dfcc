import { isWithin } from "../host/mountinfo.js";
import {
  additionalImageStores,
  artifactStores,
  configDifferenceEntries,
  crioInspect,
  ROOT_SETTINGS,
  storesToJudge,
} from "../model/stores.js";
import { criFacts, imageStoreFacts, mountUnitName, runtimeService, storageFacts } from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import { factsOf } from "../sources/source.js";
import type { StoreAccess } from "../sources/store-access.js";
import type { CheckDefinition, FindingDraft } from "./finding.js";

const AREA = "additional image and artifact stores";

/**
 * How many stores the OpenShift API accepts (ContainerRuntimeConfig: additionalLayerStores max 5,
 * additionalImageStores and additionalArtifactStores max 10). containers/storage itself has no cap.
 */
export const STORE_LIMITS = { image: 10, artifact: 10, layer: 5 } as const;

/** "nfs4 server:/export mounted at /mnt/cache (ro,vers=4.2)" */
function describeAccess(access: StoreAccess): string {
  const mount = access.mount;
  if (!mount) return "no mount found for it";
  const flags = [access.readOnly ? "ro" : "rw", access.nfsVersion ? `vers=${access.nfsVersion}` : ""];
  if (access.selinuxContext) flags.push(`context=${access.selinuxContext}`);
  return `${mount.source} (${mount.fstype}) mounted at ${mount.mountPoint} (${flags.filter(Boolean).join(",")})`;
}

/** The commands that (re)mount the filesystem a store needs, from fstab when it has a line for it. */
function mountCommands(access: StoreAccess, storePath: string): string[] {
  const entry = access.fstabNotMounted;
  if (entry) return [`mount ${entry.mountPoint}`, `systemctl status ${mountUnitName(entry.mountPoint)}`];
  if (access.mount && access.remote)
    return [`umount -l ${access.mount.mountPoint}`, `mount ${access.mount.mountPoint}`];
  return [`findmnt --target ${storePath}`, `mount <server>:/<export> ${storePath} -o ro`];
}

const imageStoreUnavailable: CheckDefinition = {
  id: "IMAGE_STORE_UNAVAILABLE",
  severity: "critical",
  title: "An additional image store cannot be used",
  area: AREA,
  description:
    "A read-only additional image store (additionalimagestores: a shared cache on NFS or a local SSD) is missing, " +
    "not mounted, or does not answer. containers/storage stats every entry when the runtime starts and refuses to " +
    "start at all when one is missing (`overlay: can't stat imageStore dir`); a hung network store hangs every " +
    "image operation; an empty mount point silently hides the cache, so air-gapped nodes cannot start pods.",
  confirm: ["timeout 5 ls <store>/overlay-images || echo unavailable", "findmnt --target <store>"],
  run(snapshot) {
    const service = runtimeService(snapshot);
    const drafts: FindingDraft[] = [];
    for (const store of storesToJudge(additionalImageStores(snapshot))) {
      const { access } = store;
      const evidence = [`additionalimagestores entry ${store.path}`];
      if (access.status === "missing") {
        drafts.push({
          subject: store.path,
          title: `Additional image store ${store.path} does not exist: ${service} cannot start`,
          evidence: [
            ...evidence,
            access.error ?? "no such directory",
            ...(access.fstabNotMounted ? [fstabLine(access)] : []),
            "containers/storage refuses a missing additional image store: the runtime fails at start with `can't stat imageStore dir`",
          ],
          remediation: {
            summary: `Mount the cache at ${store.path}, or remove the entry from additionalimagestores, then restart ${service}.`,
            commands: [...mountCommands(access, store.path), `systemctl restart ${service}`],
          },
        });
      } else if (access.status === "unresponsive" || access.status === "error") {
        drafts.push({
          subject: store.path,
          title:
            access.status === "unresponsive"
              ? `Additional image store ${store.path} does not answer`
              : `Additional image store ${store.path} cannot be read`,
          evidence: [
            ...evidence,
            access.error ?? "no answer within the probe's deadline",
            describeAccess(access),
          ],
          remediation: {
            summary:
              access.status === "unresponsive"
                ? "Bring the server back, or unmount the dead mount lazily and remount it; image operations hang until then."
                : "Fix what keeps the store from being read (permissions, I/O errors), or remove it from additionalimagestores.",
            commands: [`timeout 5 stat -f ${store.path} || echo hung`, ...mountCommands(access, store.path)],
          },
        });
      } else if (access.fstabNotMounted || (store.images.status === "missing" && !access.isMountPoint)) {
        drafts.push({
          severity: "warning",
          subject: store.path,
          title: `Additional image store ${store.path} is an empty directory: its filesystem is not mounted`,
          evidence: [
            ...evidence,
            `${store.path} exists but holds no ${imageStoreFacts(snapshot)?.driver ?? "overlay"}-images/images.json and is not a mount point`,
            ...(access.fstabNotMounted ? [fstabLine(access)] : []),
            "the runtime starts, sees no images in the cache and pulls them from the registry (or fails to, without network)",
          ],
          remediation: {
            summary: `Mount the cache at ${store.path} and restart ${service} so it reads the store's images.`,
            commands: [...mountCommands(access, store.path), `systemctl restart ${service}`],
          },
        });
      }
    }
    return drafts;
  },
};

function fstabLine(access: StoreAccess): string {
  const e = access.fstabNotMounted!;
  return `/etc/fstab mounts ${e.spec} (${e.fstype}, ${e.options}) at ${e.mountPoint}, but nothing is mounted there`;
}

const imageStoreNotReadonly: CheckDefinition = {
  id: "IMAGE_STORE_NOT_READONLY",
  severity: "warning",
  title: "A shared image cache is mounted writable",
  area: AREA,
  description:
    "Additional image stores are read-only by design: containers/storage never writes to them, and nodes sharing " +
    "one cache must not. Mounted writable, one node's tool (a podman with this store as its graphroot, a cleanup " +
    "script) can change or delete images the other nodes are running from.",
  confirm: ["findmnt --target <store> -o TARGET,SOURCE,FSTYPE,OPTIONS"],
  run(snapshot) {
    return storesToJudge(additionalImageStores(snapshot))
      .filter(
        ({ access }) =>
          access.status === "ok" && access.readOnly === false && (access.isMountPoint || access.remote),
      )
      .map((store) => {
        const mountPoint = store.access.mount?.mountPoint ?? store.path;
        return {
          subject: store.path,
          evidence: [`additionalimagestores entry ${store.path}`, describeAccess(store.access)],
          remediation: {
            summary: `Remount ${mountPoint} read-only, and add ro to its options in /etc/fstab (or the mount unit) so it stays so.`,
            commands: [`mount -o remount,ro ${mountPoint}`, `findmnt ${mountPoint} -o TARGET,OPTIONS`],
          },
        };
      });
  },
};

const imageStoreIncomplete: CheckDefinition = {
  id: "IMAGE_STORE_INCOMPLETE",
  severity: "warning",
  title: "Images in an additional image store lack layers",
  area: AREA,
  description:
    "An image listed in the store's images.json has layers that are neither in the store nor in graphroot: the " +
    "cache was copied or synchronised partly, or pruned on another node. The runtime lists the image as present, " +
    "so it is not pulled, and a container from it fails with `layer not known`.",
  confirm: ["jq -r '.[].layer' <store>/overlay-images/images.json", "ls <store>/overlay"],
  run(snapshot) {
    return storesToJudge(additionalImageStores(snapshot))
      .filter((store) => (store.completeness?.incompleteImages ?? 0) > 0)
      .map((store) => {
        const c = store.completeness!;
        return {
          subject: store.path,
          title: `${c.incompleteImages} of ${c.checkedImages} images in ${store.path} lack layers`,
          evidence: [
            `${c.missingLayers} ${c.missingLayers === 1 ? "layer" : "layers"} missing in ${store.path} and graphroot`,
            ...c.examples.map(
              (e) =>
                `image ${e.image}: layer ${e.layer} ${e.missing === "record" ? "has no record in layers.json" : "has a record but no directory"}`,
            ),
          ],
          remediation: {
            summary:
              "Re-populate the cache from its source (the node or job that fills it), or remove the broken images from it there; nodes read it as it is.",
            commands: [
              `podman --root ${store.path} images`,
              `podman --root ${store.path} pull <image>   # on the host that writes the cache, with the store mounted writable there`,
            ],
          },
        };
      });
  },
};

/** Journal counts of a reason of the crio-storage log pack. */
function journalCounts(snapshot: Snapshot, reason: string) {
  return (factsOf(snapshot.sources.journal)?.counts ?? []).filter(
    (c) => c.pack === "crio-storage" && c.reason === reason,
  );
}

const artifactStoreInvalid: CheckDefinition = {
  id: "ARTIFACT_STORE_INVALID",
  severity: "warning",
  title: "An additional artifact store cannot be used",
  area: AREA,
  description:
    "Each entry of CRI-O's additional_artifact_stores ([crio.runtime], CRI-O 1.36 and later) must be a directory " +
    "holding `artifacts/`, an OCI layout with index.json. A store without it, with a broken index, missing or hung " +
    "gives no artifacts: pods mounting OCI artifacts (image volumes of artifact type) fall back to pulling, or fail " +
    "offline. Although CRI-O calls these stores read-only, it opens `artifacts/index.lock` for writing (libartifact, " +
    "as of CRI-O 1.36): on a read-only mount it logs `Skipping additional artifact store` and goes on without it.",
  confirm: ["ls <store>/artifacts", "jq '.manifests | length' <store>/artifacts/index.json"],
  run(snapshot) {
    const service = runtimeService(snapshot);
    const drafts: FindingDraft[] = [];
    for (const store of storesToJudge(artifactStores(snapshot))) {
      const { access } = store;
      const base = `additional_artifact_stores entry ${store.path}`;
      let problem: { title: string; why: string } | undefined;
      if (access.status === "missing")
        problem = { title: "does not exist", why: access.error ?? "no such directory" };
      else if (access.status === "unresponsive")
        problem = { title: "does not answer", why: access.error ?? "no answer" };
      else if (access.status === "error")
        problem = { title: "cannot be read", why: access.error ?? "unknown error" };
      else if (!store.hasArtifactsDir)
        problem = {
          title: "has no artifacts/ directory",
          why: `${store.path}/artifacts does not exist${access.readOnly ? "" : ": CRI-O creates it empty at start, so the store holds no artifacts"}`,
        };
      else if (store.index.status !== "ok")
        problem = {
          title: "has no usable artifacts/index.json",
          why: store.index.error ?? `${store.path}/artifacts/index.json is ${store.index.status}`,
        };
      else if (access.readOnly)
        problem = {
          title: "is mounted read-only, and CRI-O skips it",
          why:
            "CRI-O opens artifacts/index.lock for writing (go.podman.io/common libartifact NewArtifactStore, as of CRI-O 1.36), " +
            "which a read-only filesystem refuses: it logs `Skipping additional artifact store` and goes on without it",
        };
      if (!problem) continue;
      drafts.push({
        subject: store.path,
        title: `Artifact store ${store.path} ${problem.title}`,
        evidence: [
          base,
          problem.why,
          // The store's own mount (a shared cache), not the root filesystem it may lie on.
          ...(access.mount && (access.isMountPoint || access.remote) ? [describeAccess(access)] : []),
        ],
        remediation: {
          summary: access.readOnly
            ? `Mount ${store.path} read-write on this node (CRI-O writes only artifacts/index.lock there), then restart ${service}.`
            : `Populate ${store.path}/artifacts as an OCI layout (or mount the store there), or remove the entry; then restart ${service}.`,
          commands: [
            ...(access.status === "ok" ? [] : mountCommands(access, store.path)),
            `ls -la ${store.path}/artifacts`,
            `systemctl restart ${service}`,
          ],
        },
      });
    }
    for (const count of journalCounts(snapshot, "ArtifactStoreSkipped")) {
      drafts.push({
        subject: count.unit,
        title: `CRI-O skipped an additional artifact store (${count.count} times, last ${count.lastSeen})`,
        evidence: [`${count.unit}: ${count.example}`],
        remediation: {
          summary:
            "The message names the store and the reason; fix it and restart CRI-O, which opens its stores at start.",
          commands: [
            `journalctl -u ${service} -b | grep 'Skipping additional artifact store'`,
            `systemctl restart ${service}`,
          ],
        },
      });
    }
    return drafts;
  },
};

const storeConfigNotInEffect: CheckDefinition = {
  id: "STORE_CONFIG_NOT_IN_EFFECT",
  severity: "warning",
  title: "The store configuration on disk is not the one CRI-O runs with",
  area: AREA,
  description:
    "CRI-O reads crio.conf, its drop-ins and storage.conf once, at start. A change written since (by hand, by the " +
    "Machine Config Operator before its reboot, by a drain that never finished) is not in effect until CRI-O " +
    "restarts: the node runs with other stores than its files say, and a later restart changes them all at once.",
  confirm: [
    "curl -s --unix-socket /var/run/crio/crio.sock http://localhost/config | grep -E 'root|imagestore|storage_option|artifact'",
    "systemctl show crio -p ActiveEnterTimestamp",
  ],
  run(snapshot) {
    const inspect = crioInspect(snapshot);
    if (!inspect) return [];
    // With /info read, CRI_IMAGEFS_MISMATCH judges root and imagestore (from ImageFsInfo and /info),
    // with its own advice: one edit, one finding. Without it (the CRI answered through crictl, or
    // not at all), they are this check's.
    const cri = criFacts(snapshot);
    const mismatchSpeaks = !!cri?.answeredBy && !!cri.crioInfo;
    const differences = configDifferenceEntries(snapshot)
      .filter((d) => !(mismatchSpeaks && ROOT_SETTINGS.includes(d.setting)))
      .map((d) => d.text);
    const changed = inspect.changedSinceStart.map(
      (f) =>
        `${f.path} modified ${f.modifiedAt}, after crio started${inspect.process ? ` (${inspect.process.startedAt})` : ""}`,
    );
    if (differences.length === 0 && changed.length === 0) return [];
    const service = runtimeService(snapshot);
    return [
      {
        severity: differences.length > 0 ? "warning" : "info",
        subject: inspect.socket,
        title:
          differences.length > 0
            ? `CRI-O runs with ${differences.length} store setting${differences.length === 1 ? "" : "s"} other than its configuration files say`
            : "Configuration files changed after CRI-O started; their changes are not in effect",
        evidence: [...differences, ...changed],
        remediation: {
          summary:
            "Restart CRI-O when the node is drained (on OpenShift, let the Machine Config Operator finish its reboot); check the files first if the change was not meant.",
          commands: [
            "crio config 2>/dev/null | grep -E '^ *(root|runroot|imagestore|storage_option|additional_artifact_stores) '",
            `kubectl drain $(hostname) --ignore-daemonsets --delete-emptydir-data`,
            `systemctl restart ${service}`,
            `kubectl uncordon $(hostname)`,
          ],
        },
      },
    ];
  },
};

interface ListProblem {
  setting: string;
  problem: string;
  critical?: boolean;
}

function listProblems(snapshot: Snapshot): ListProblem[] {
  const storage = storageFacts(snapshot);
  if (!storage) return [];
  const cs = storage.containersStorage;
  const lists: { setting: string; kind: keyof typeof STORE_LIMITS; paths: string[] }[] = [
    {
      setting: `additionalimagestores (${cs.additionalImageStores.from})`,
      kind: "image",
      paths: cs.additionalImageStores.value,
    },
    {
      setting: `additionallayerstores (${cs.additionalLayerStores.from})`,
      kind: "layer",
      paths: cs.additionalLayerStores.value.map((s) => s.path),
    },
  ];
  if (storage.crio) {
    const artifacts = storage.crio.additionalArtifactStores;
    lists.push({
      setting: `additional_artifact_stores (${artifacts.from})`,
      kind: "artifact",
      paths: artifacts.value,
    });
  }
  const inside = [cs.graphroot.value, cs.imagestore.value].filter((p): p is string => !!p);
  const problems: ListProblem[] = [];
  for (const { setting, kind, paths } of lists) {
    if (paths.length > STORE_LIMITS[kind])
      problems.push({
        setting,
        problem: `${paths.length} entries; OpenShift accepts at most ${STORE_LIMITS[kind]} ${kind} stores`,
      });
    const seen = new Set<string>();
    for (const p of paths) {
      const normal = p.replace(/\/+$/, "") || "/";
      if (seen.has(normal))
        problems.push({
          setting,
          problem: `${p} is listed more than once: only its first place counts`,
        });
      seen.add(normal);
      // Relative layer store paths are STORAGE_CONF_STORE_CONFUSION's.
      if (!p.startsWith("/") && kind !== "layer")
        problems.push({
          setting,
          // containers/storage (overlay parseOptions) and CRI-O (RuntimeConfig.Validate) refuse it.
          problem: `${p} is a relative path: ${kind === "image" ? "containers/storage" : "CRI-O"} refuses it and the runtime does not start`,
          critical: true,
        });
      const within = inside.find((root) => p.startsWith("/") && isWithin(normal, root));
      if (within)
        problems.push({
          setting,
          problem: `${p} lies inside ${within === cs.graphroot.value ? "graphroot" : "imagestore"} ${within}`,
        });
    }
  }
  return problems;
}

const storeListInvalid: CheckDefinition = {
  id: "STORE_LIST_INVALID",
  severity: "warning",
  title: "A list of additional stores is malformed",
  area: AREA,
  description:
    "additionalimagestores, additionallayerstores and additional_artifact_stores are ordered lists of absolute " +
    "paths. A relative image or artifact store stops the runtime from starting; only a duplicate's first place counts; more entries than " +
    "OpenShift's API accepts (5 layer stores, 10 image or artifact stores) cannot be expressed in a " +
    "ContainerRuntimeConfig and is overwritten at the next machine config rollout; a store inside graphroot or " +
    "imagestore is walked and counted as part of that store.",
  confirm: [
    "grep -rE 'additional(imagestores|layerstores)' /etc/containers/storage.conf /etc/containers/storage.conf.d",
    "grep -r additional_artifact_stores /etc/crio",
  ],
  run(snapshot) {
    const problems = listProblems(snapshot);
    if (problems.length === 0) return [];
    return [
      {
        ...(problems.some((p) => p.critical) ? { severity: "critical" as const } : {}),
        title: `${problems.length} problems in the lists of additional stores`,
        evidence: problems.map((p) => `${p.setting}: ${p.problem}`),
        remediation: {
          summary:
            "Give each store once, as an absolute path outside graphroot and imagestore, within the platform's limits; on OpenShift change the ContainerRuntimeConfig, elsewhere the file named.",
          commands: [
            "oc get containerruntimeconfig -o yaml   # OpenShift",
            `systemctl restart ${runtimeService(snapshot)}`,
          ],
        },
      },
    ];
  },
};

const uncleanShutdown: CheckDefinition = {
  id: "UNCLEAN_SHUTDOWN",
  severity: "info",
  title: "CRI-O's last stop was not clean",
  area: AREA,
  description:
    "CRI-O writes clean_shutdown_file when it stops cleanly and deletes it when it starts. Missing while CRI-O is " +
    "stopped (and its `.supported` marker present), the last stop was a crash or power loss: at its next start " +
    "CRI-O checks and repairs storage, and `crio wipe` removes the containers in graphroot. A journal line says when " +
    "this already happened.",
  confirm: ["ls -l /var/lib/crio/", "journalctl -u crio -b | grep -i 'unclean shutdown'"],
  run(snapshot) {
    const drafts: FindingDraft[] = [];
    const inspect = crioInspect(snapshot);
    if (inspect?.cleanShutdown.state === "unclean") {
      const file = inspect.cleanShutdown.file;
      drafts.push({
        subject: file,
        evidence: [
          `crio is not running; ${file} is missing and ${file}.supported exists`,
          "the next start of crio repairs storage; crio wipe removes the containers in graphroot",
        ],
        remediation: {
          summary:
            "Expect a longer first start and pods re-created; check the disk for errors first if the node lost power.",
          commands: [
            "journalctl -b -1 -u crio | tail -n 50",
            "crio check",
            `systemctl start ${runtimeService(snapshot)}`,
          ],
        },
      });
    }
    for (const count of journalCounts(snapshot, "UncleanShutdownWipe")) {
      drafts.push({
        subject: count.unit,
        title: `CRI-O found an unclean shutdown and wiped storage (${count.count} times, last ${count.lastSeen})`,
        evidence: [`${count.unit}: ${count.example}`],
        remediation: {
          summary: "Containers were removed and re-created; look for the crash or power loss before it.",
          commands: ["journalctl --list-boots", "journalctl -b -1 -p warning | tail -n 50"],
        },
      });
    }
    return drafts;
  },
};

export const storeChecks: CheckDefinition[] = [
  imageStoreUnavailable,
  imageStoreNotReadonly,
  imageStoreIncomplete,
  artifactStoreInvalid,
  storeConfigNotInEffect,
  storeListInvalid,
  uncleanShutdown,
];
