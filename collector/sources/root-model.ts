import type { Host, MountFact } from "../host/host.js";
import { isWithin, mountOption } from "../host/mountinfo.js";
import type { SourceDefinition } from "./source.js";

/**
 * How the node's root filesystem is built: a plain disk, or an image-based system (ostree,
 * bootc) whose "/" may be a composefs overlay, whose root or /etc may be transient (lost at every
 * boot), and whose /opt and /usr/local may be state overlays. Runtime state kept in such places
 * does not survive an update or a reboot.
 */
export interface RootModelFacts {
  /** /run/ostree-booted exists: ostree-prepare-root set this boot up. */
  ostreeBooted: boolean;
  /** prepare-root.conf as in force: /etc/ostree replaces /usr/lib/ostree (GKeyFile loads clear). */
  prepareRoot: {
    file: string | null;
    composefs: string | null;
    rootTransient: boolean;
    rootTransientRo: boolean;
    etcTransient: boolean;
  };
  root: MountFact | null;
  /** "/" is an overlay mounted from composefs. */
  composefs: boolean;
  /** "/" is an overlay whose upper directory is under /run: everything written to it is lost at reboot. */
  transientRoot: boolean;
  /** ostree state overlays (ostree-state-overlay@.service) on /opt, /usr/local. */
  stateOverlays: { mountPoint: string; upperdir: string | null }[];
  /** Mounts that keep nothing across a reboot (tmpfs, ramfs), by host mount point. */
  volatileMounts: string[];
}

const PREPARE_ROOT = ["/etc/ostree/prepare-root.conf", "/usr/lib/ostree/prepare-root.conf"];

export const rootModelSource: SourceDefinition<{ "root-model": RootModelFacts }, "root-model"> = {
  name: "root-model",
  deadlineMs: 5000,
  async collect({ host }) {
    const table = await host.mounts().catch(() => undefined);
    const mounts = (table?.entries ?? []).map((entry) => ({ entry, fact: host.toMountFact(entry) }));
    const root = mounts.filter((m) => m.fact.mountPoint === "/").at(-1);
    const superOptions = root?.entry.superOptions ?? [];
    const upperdir = mountOption(superOptions, "upperdir");
    return {
      ostreeBooted: await host.exists("/run/ostree-booted"),
      prepareRoot: await readPrepareRoot(host),
      root: root?.fact ?? null,
      composefs: root?.fact.fstype === "overlay" && root.fact.source === "composefs",
      transientRoot:
        root?.fact.fstype === "overlay" &&
        upperdir !== null &&
        isWithin(host.root.toHost(upperdir) ?? upperdir, "/run"),
      stateOverlays: mounts
        .filter(
          (m) =>
            m.fact.fstype === "overlay" &&
            (mountOption(m.entry.superOptions, "upperdir") ?? "").includes("/ostree/state-overlays/"),
        )
        .map((m) => ({
          mountPoint: m.fact.mountPoint,
          upperdir: mountOption(m.entry.superOptions, "upperdir"),
        })),
      volatileMounts: mounts
        .filter((m) => m.fact.fstype === "tmpfs" || m.fact.fstype === "ramfs")
        .map((m) => m.fact.mountPoint),
    };
  },
};

/** GKeyFile: [group] then key=value; true/yes/1 are true. The first file found is the one in force. */
async function readPrepareRoot(host: Host): Promise<RootModelFacts["prepareRoot"]> {
  const none = {
    file: null,
    composefs: null,
    rootTransient: false,
    rootTransientRo: false,
    etcTransient: false,
  };
  for (const file of PREPARE_ROOT) {
    let text: string;
    try {
      text = (await host.readText(file, 64 * 1024)).text;
    } catch {
      continue;
    }
    const values = new Map<string, string>();
    let group = "";
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line || line.startsWith("#")) continue;
      const header = /^\[(.+)\]$/.exec(line);
      if (header) group = header[1]!.trim();
      else if (line.includes("="))
        values.set(
          `${group}.${line.slice(0, line.indexOf("=")).trim()}`,
          line.slice(line.indexOf("=") + 1).trim(),
        );
    }
    const bool = (key: string) => ["true", "yes", "1"].includes((values.get(key) ?? "").toLowerCase());
    return {
      file,
      composefs: values.get("composefs.enabled") ?? null,
      rootTransient: bool("root.transient"),
      rootTransientRo: bool("root.transient-ro"),
      etcTransient: bool("etc.transient"),
    };
  }
  return none;
}
