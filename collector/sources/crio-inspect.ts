import { Absent, type SourceDefinition } from "./source.js";
import type { StorageConfigFacts } from "./storage-config.js";

/** An answer of one of CRI-O's HTTP inspect endpoints on its socket. */
export type EndpointAnswer<T> =
  | { status: "ok"; value: T }
  /** Nothing answers on the socket (CRI-O stopped, or the socket is elsewhere). */
  | { status: "unreachable"; error: string }
  /** It answered, but not with what CRI-O sends (HTTP error, malformed body). */
  | { status: "error"; error: string };

/** GET /info (cri-o server/inspect.go). */
export interface CrioInfo {
  storageDriver: string;
  storageRoot: string;
  /** The imagestore in effect ("" when none). */
  storageImage: string;
}

/** The store settings in GET /config, the TOML of the configuration the running CRI-O uses. */
export interface CrioEffectiveConfig {
  root: string;
  runroot: string;
  imagestore: string;
  storageDriver: string;
  storageOption: string[];
  additionalArtifactStores: string[];
  cleanShutdownFile: string;
}

export interface CrioInspectFacts {
  /** Host path of the socket asked. */
  socket: string;
  info: EndpointAnswer<CrioInfo>;
  config: EndpointAnswer<CrioEffectiveConfig>;
  /** The running crio process and when it started (from /proc), if one runs. */
  process: { pid: number; startedAt: string } | null;
  /** Configuration files CRI-O reads that were modified after the running crio started. */
  changedSinceStart: { path: string; modifiedAt: string }[];
  cleanShutdown: CleanShutdownFact;
}

/**
 * CRI-O deletes clean_shutdown_file at start (creating `<file>.supported`) and writes it when it
 * stops cleanly (cmd/crio/main.go). So: running → normally absent; stopped with the file → clean;
 * stopped without it while `.supported` exists → the last stop was unclean and the next start
 * repairs or wipes storage.
 */
export interface CleanShutdownFact {
  file: string;
  present: boolean;
  supportedMarker: boolean;
  state: "running" | "clean" | "unclean" | "unknown";
}

type Inputs = { "storage-config": StorageConfigFacts; "crio-inspect": CrioInspectFacts };

export const crioInspectSource: SourceDefinition<Inputs, "crio-inspect"> = {
  name: "crio-inspect",
  deadlineMs: 5000,
  async collect() {
    return new Absent("not implemented yet");
  },
};
