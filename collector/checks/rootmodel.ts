import { isWithin } from "../host/mountinfo.js";
import { filesystemFacts, runtimeService } from "../model/view.js";
import type { Snapshot } from "../snapshot.js";
import type { RootModelFacts } from "../sources/root-model.js";
import { factsOf } from "../sources/source.js";
import type { CheckDefinition } from "./finding.js";

/** Where runtime state lives that must survive a reboot and an update (the runroot is meant to be volatile). */
interface StatePlace {
  what: string;
  /** The path as configured, for the evidence. */
  path: string;
  /** The host path it resolves to (symlinks followed): where the state really lies. */
  resolved: string;
  mountPoint: string | null;
  fstype: string | null;
}

function persistentState(snapshot: Snapshot): StatePlace[] {
  const out: StatePlace[] = (filesystemFacts(snapshot)?.roles ?? [])
    .filter((r) => r.role !== "runroot" && r.status === "ok")
    .map((r) => ({
      what: r.role,
      path: r.path,
      resolved: r.resolved ?? r.path,
      mountPoint: r.mount?.mountPoint ?? null,
      fstype: r.mount?.fstype ?? null,
    }));
  for (const store of factsOf(snapshot.sources["layer-stores"])?.stores ?? []) {
    const proc = store.process;
    if (!proc?.root) continue;
    // An older snapshot has no rootPlace: the path as written is all there is to judge.
    const place = proc.rootPlace;
    out.push({
      what: `${proc.kind} --root`,
      path: proc.root,
      resolved: place?.resolved ?? proc.root,
      mountPoint: place?.mountPoint ?? null,
      fstype: place?.fstype ?? null,
    });
  }
  return out;
}

/** The path in the evidence: as configured, and where it leads when a symlink takes it elsewhere. */
function shown(state: StatePlace): string {
  return state.resolved === state.path ? state.path : `${state.path} (→ ${state.resolved})`;
}

/**
 * The state lies in the root filesystem's own tree: on "/" itself, or (mount unknown) outside
 * /var and outside any state overlay (ostree mounts /var and the state overlays apart from the
 * deployment, so what is on them persists).
 */
function inRootTree(state: StatePlace, root: RootModelFacts): boolean {
  if (state.mountPoint !== null) return state.mountPoint === "/";
  return (
    !isWithin(state.resolved, "/var") &&
    !root.stateOverlays.some((o) => isWithin(state.resolved, o.mountPoint))
  );
}

/** Outside what an ostree update carries over: /var (the stateroot's), /etc (merged) and the state overlays. */
function leftBehindByUpdate(state: StatePlace, root: RootModelFacts): boolean {
  return (
    root.ostreeBooted &&
    inRootTree(state, root) &&
    !isWithin(state.resolved, "/var") &&
    !isWithin(state.resolved, "/etc")
  );
}

const notPersistent: CheckDefinition = {
  id: "RUNTIME_STATE_NOT_PERSISTENT",
  severity: "warning",
  title: "Container runtime state sits where a reboot or an update loses it",
  area: "image-based systems",
  description:
    "On image-based nodes (ostree, bootc) only /var and /etc persist by design; a transient root (prepare-root.conf " +
    "[root] transient) or a tmpfs keeps nothing across a reboot, and a transient /etc ([etc] transient) drops local " +
    "SELinux equivalences written by semanage. On an ostree deployment, state outside /var and /etc lies in the " +
    "deployment's own tree, which an update replaces with a new one (unless /opt or /usr/local have a state " +
    "overlay, ostree-state-overlay@.service, whose state is carried over). A store, the kubelet root or a layer " +
    "store's cache there is lost: images are pulled again, lazy layers break, labels fall back to the policy's defaults.",
  confirm: [
    "findmnt -o TARGET,FSTYPE,OPTIONS /",
    "cat /usr/lib/ostree/prepare-root.conf /etc/ostree/prepare-root.conf",
  ],
  run(snapshot) {
    const root = factsOf(snapshot.sources["root-model"]);
    if (!root) return [];
    const evidence: string[] = [];
    for (const state of persistentState(snapshot)) {
      const volatile = root.volatileMounts.find((m) => m !== "/" && isWithin(state.resolved, m));
      if (volatile) evidence.push(`${state.what} ${shown(state)} is on a volatile mount (${volatile})`);
      else if (root.transientRoot && inRootTree(state, root))
        evidence.push(
          `${state.what} ${shown(state)} is on the transient root: its upper directory is under /run`,
        );
      else if (leftBehindByUpdate(state, root))
        evidence.push(
          `${state.what} ${shown(state)} is in the ostree deployment's own tree, outside /var: the next update boots a new deployment without it`,
        );
    }
    const subs = factsOf(snapshot.sources.selinux)?.policy.localSubstitutions ?? [];
    if (root.prepareRoot.etcTransient && subs.length > 0) {
      evidence.push(
        `/etc is transient (${root.prepareRoot.file}: [etc] transient=true): the local SELinux equivalences (${subs.map((s) => `${s.alias} → ${s.original}`).join(", ")}) are lost at reboot`,
      );
    }
    if (evidence.length === 0) return [];
    return [
      {
        evidence: [
          root.ostreeBooted ? "ostree-booted node" : "not an ostree node",
          `/ is ${root.root?.fstype ?? "?"} from ${root.root?.source ?? "?"}${root.composefs ? " (composefs)" : ""}`,
          ...root.stateOverlays.map(
            (o) =>
              `${o.mountPoint} is a state overlay (upper ${o.upperdir ?? "?"}): its state is carried across updates`,
          ),
          ...evidence,
        ],
        remediation: {
          summary:
            "Keep stores and the kubelet root under /var (persistent on ostree/bootc), and bake SELinux equivalences into the image instead of running semanage on the node.",
          commands: [
            "findmnt --target /var/lib/containers",
            `systemctl stop ${runtimeService(snapshot)}`,
            "# move the store under /var, update storage.conf / crio.conf, then start the runtime",
          ],
        },
      },
    ];
  },
};

export const rootModelChecks: CheckDefinition[] = [notPersistent];
