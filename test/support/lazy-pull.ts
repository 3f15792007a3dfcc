import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { execa, type ResultPromise } from "execa";

/**
 * Real lazy pulls for tests, with Debian's podman 4.3.1 (containers/storage 1.43): a
 * docker-registry on 127.0.0.1, images built with buildah and pushed to it, and an additional
 * layer store served through a real FUSE mount (bindfs over a directory laid out as a layer
 * store). This containers/storage looks a layer up as <store>/<base64(ref)>/<blob digest>/ with
 * diff/, info and blob (newer versions use the TOC digest), so podman's own pull records the
 * layers found there as lazy: an `additionallayer` file and a `diff` symlink into the store.
 */

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

export interface Registry {
  host: string;
  stop(): Promise<void>;
}

/** docker-registry serving on 127.0.0.1 and a free port, its data under `dir`. */
export async function startRegistry(dir: string): Promise<Registry> {
  const port = await freePort();
  await mkdir(path.join(dir, "data"), { recursive: true });
  const config = path.join(dir, "registry.yml");
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = execa("/usr/bin/docker-registry", ["serve", config], { reject: false, stdin: "ignore" });
  const host = `127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200; attempt++) {
    const up = await fetch(`http://${host}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (attempt === 199) throw new Error("docker-registry did not come up");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    host,
    async stop() {
      child.kill("SIGKILL");
      await child;
    },
  };
}

/**
 * Builds and pushes two images with buildah (vfs storage under `dir`): test/app:1 with three
 * layers, and test/full:1 with two others. Each layer is its own commit, as buildah needs.
 */
export async function pushImages(dir: string, registry: Registry): Promise<void> {
  const files = path.join(dir, "files");
  await mkdir(files, { recursive: true });
  await writeFile(path.join(files, "tool"), Buffer.alloc(200_000, 7));
  await writeFile(path.join(files, "hello.txt"), "hello from layer 2\n");
  await writeFile(
    path.join(files, "data.bin"),
    Buffer.from(Array.from({ length: 64_000 }, (_, i) => (i * 31) % 251)),
  );
  await writeFile(path.join(files, "full.txt"), "a fully pulled image\n");
  const buildah = (...args: string[]) =>
    execa("buildah", [
      "--root",
      path.join(dir, "build-root"),
      "--runroot",
      path.join(dir, "build-run"),
      "--storage-driver",
      "vfs",
      ...args,
    ]);
  const layers = async (name: string, steps: [string, string][]) => {
    let from = "scratch";
    for (const [index, [file, target]] of steps.entries()) {
      const container = (await buildah("from", from)).stdout.trim();
      await buildah("copy", "-q", container, path.join(files, file), target);
      const image = index === steps.length - 1 ? name : `${name}-layer${index}`;
      await buildah("commit", "-q", container, image);
      await buildah("rm", container);
      from = image;
    }
  };
  await layers("localhost/app:1", [
    ["tool", "/bin/tool"],
    ["hello.txt", "/data/hello.txt"],
    ["data.bin", "/data/data.bin"],
  ]);
  await layers("localhost/full:1", [
    ["tool", "/usr/bin/other-tool"],
    ["full.txt", "/srv/full.txt"],
  ]);
  for (const image of ["app", "full"]) {
    await buildah(
      "push",
      "-q",
      "--tls-verify=false",
      `localhost/${image}:1`,
      `docker://${registry.host}/test/${image}:1`,
    );
  }
}

interface Manifest {
  config: { digest: string };
  layers: { digest: string; size: number; mediaType: string }[];
}

async function registryJson<T>(url: string): Promise<T> {
  const response = await fetch(url, {
    headers: {
      Accept:
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    },
  });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return (await response.json()) as T;
}

/**
 * Lays out what a layer store serves for `ref` (fetched from the registry): per layer
 * <store>/<base64(ref)>/<blob digest>/ with the extracted diff/, the compressed blob, and the
 * info JSON in the format this containers/storage reads. `only` picks some layers (by index).
 */
export async function layOutStore(
  storeSource: string,
  registry: Registry,
  repo: string,
  tag: string,
  only?: number[],
) {
  const ref = `${registry.host}/${repo}:${tag}`;
  const base = `http://${registry.host}/v2/${repo}`;
  const manifest = await registryJson<Manifest>(`${base}/manifests/${tag}`);
  const config = await registryJson<{ rootfs: { diff_ids: string[] } }>(
    `${base}/blobs/${manifest.config.digest}`,
  );
  const refDir = path.join(storeSource, Buffer.from(ref).toString("base64"));
  const digests: string[] = [];
  for (const [index, layer] of manifest.layers.entries()) {
    if (only && !only.includes(index)) continue;
    const blob = Buffer.from(await (await fetch(`${base}/blobs/${layer.digest}`)).arrayBuffer());
    const dir = path.join(refDir, layer.digest);
    await mkdir(path.join(dir, "diff"), { recursive: true });
    await writeFile(path.join(dir, "blob"), blob);
    await execa("tar", ["-xzf", path.join(dir, "blob"), "-C", path.join(dir, "diff")]);
    const info = {
      "compressed-diff-digest": layer.digest,
      "compressed-size": blob.length,
      "diff-digest": config.rootfs.diff_ids[index],
      "diff-size": gunzipSync(blob).length,
      compression: 2,
    };
    await writeFile(path.join(dir, "info"), JSON.stringify(info));
    digests.push(layer.digest);
  }
  return { ref, digests };
}

export interface Bindfs {
  pid: number;
  target: string;
  process: ResultPromise;
}

/** bindfs in the foreground, as our own child (so we hold its PID), over `source` at `target`. */
export async function mountBindfs(source: string, target: string): Promise<Bindfs> {
  await mkdir(target, { recursive: true });
  const child = execa("bindfs", ["-f", "-o", "allow_other", source, target], {
    reject: false,
    stdin: "ignore",
  });
  if (child.pid === undefined) throw new Error("bindfs did not start");
  for (let attempt = 0; attempt < 200; attempt++) {
    const mounts = await readFile("/proc/self/mounts", "utf8");
    if (
      mounts
        .split("\n")
        .some((line) => line.split(" ")[1] === target && line.split(" ")[2]?.startsWith("fuse"))
    ) {
      return { pid: child.pid, target, process: child };
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`bindfs did not mount ${target}`);
}

/** podman with this test's storage.conf; pulls over plain HTTP from the test's registry. */
export function podman(storageConf: string, args: string[]) {
  return execa("podman", args, {
    env: { CONTAINERS_STORAGE_CONF: storageConf },
    reject: false,
    timeout: 60_000,
    killSignal: "SIGKILL",
  });
}
