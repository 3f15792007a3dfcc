/**
 * A stand-in for CRI-O on its socket. CRI-O is not packaged for Debian 12 and cannot be fetched
 * here, so this server answers the three requests imagefs-doctor makes the way CRI-O does for
 * the storage it was started with:
 * - RuntimeService/Version: runtime_name "cri-o" (cri-o server/version.go);
 * - ImageService/ImageFsInfo: image filesystem <imagestore or graphroot>/<driver>-images and,
 *   with an imagestore, container filesystem <graphroot>/<driver>-containers; without one both
 *   lists name <graphroot>/<driver>-images (cri-o server/image_fs_info.go, since v1.29.0);
 * - GET /info over HTTP on the same socket: storage_driver, storage_root, storage_image
 *   (cri-o server/inspect.go);
 * - GET /config over HTTP, when given: the TOML text of the running configuration, served as is
 *   with content type application/toml (cri-o server/inspect.go; the text comes from the test,
 *   e.g. test/fixtures/crio/config.toml).
 * It is real gRPC over a real unix socket; only the runtime behind it is missing.
 */
import { mkdir, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/**
 * Passes a paused connection whose first bytes were already read on to the unix socket
 * `socketPath`, both ways, from those bytes on.
 */
export function passOn(connection: net.Socket, first: Buffer, socketPath: string): void {
  const upstream = net.connect(socketPath, () => {
    upstream.write(first);
    connection.pipe(upstream).pipe(connection);
    connection.resume();
  });
  upstream.on("error", () => connection.destroy());
  connection.on("error", () => upstream.destroy());
}

export interface CrioStorage {
  graphroot: string;
  imagestore?: string;
  driver?: string;
  version?: string;
}

export interface FakeCrioAnswers {
  /** Body of GET /config; without it /config answers 404, as an unknown path does. */
  config?: string;
}

export interface FakeCrio {
  close(): Promise<void>;
}

const PROTO = fileURLToPath(new URL("../../collector/sources/cri-api.proto", import.meta.url));

function usage(mountpoint: string) {
  return {
    timestamp: String(Date.now() * 1e6),
    fsId: { mountpoint },
    usedBytes: { value: "4096" },
    inodesUsed: { value: "3" },
  };
}

/** Starts the stand-in at `socket` (a local path), reporting host paths from `storage`. */
export async function startFakeCrio(
  socket: string,
  storage: CrioStorage,
  answers: FakeCrioAnswers = {},
): Promise<FakeCrio> {
  const driver = storage.driver ?? "overlay";
  const images = path.posix.join(storage.imagestore ?? storage.graphroot, `${driver}-images`);
  const containers = storage.imagestore ? path.posix.join(storage.graphroot, `${driver}-containers`) : images;
  const definition = protoLoader.loadSync(PROTO, { longs: String, defaults: true });
  const v1 = (grpc.loadPackageDefinition(definition).runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const grpcServer = new grpc.Server();
  grpcServer.addService((v1.RuntimeService as grpc.ServiceClientConstructor).service, {
    Version: (_: unknown, done: grpc.sendUnaryData<object>) =>
      done(null, {
        version: "0.1.0",
        runtimeName: "cri-o",
        runtimeVersion: storage.version ?? "1.31.3",
        runtimeApiVersion: "v1",
      }),
  });
  grpcServer.addService((v1.ImageService as grpc.ServiceClientConstructor).service, {
    ImageFsInfo: (_: unknown, done: grpc.sendUnaryData<object>) =>
      done(null, { imageFilesystems: [usage(images)], containerFilesystems: [usage(containers)] }),
  });
  // gRPC listens on a private socket; the public one sniffs each connection, like CRI-O's cmux.
  const grpcSocket = `${socket}.grpc`;
  await mkdir(path.dirname(socket), { recursive: true });
  await new Promise<void>((resolve, reject) =>
    grpcServer.bindAsync(`unix:${grpcSocket}`, grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    ),
  );
  const info = http.createServer((request, response) => {
    if (request.url === "/config" && answers.config !== undefined) {
      response.setHeader("content-type", "application/toml");
      response.end(answers.config);
      return;
    }
    if (request.url !== "/info") {
      response.writeHead(404).end();
      return;
    }
    response.setHeader("content-type", "application/json");
    response.end(
      JSON.stringify({
        storage_driver: driver,
        storage_root: storage.graphroot,
        storage_image: storage.imagestore ?? "",
        cgroup_driver: "systemd",
      }),
    );
  });
  const open = new Set<net.Socket>();
  const front = net.createServer((connection) => {
    open.add(connection);
    connection.on("close", () => open.delete(connection));
    connection.once("data", (first) => {
      connection.pause();
      if (first.toString("latin1").startsWith("PRI * HTTP/2.0")) {
        passOn(connection, first, grpcSocket);
      } else {
        connection.unshift(first);
        info.emit("connection", connection);
        connection.resume();
      }
    });
  });
  await new Promise<void>((resolve) => front.listen(socket, resolve));
  return {
    async close() {
      for (const connection of open) connection.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      grpcServer.forceShutdown();
      info.close();
      await rm(socket, { force: true });
      await rm(grpcSocket, { force: true });
    },
  };
}
