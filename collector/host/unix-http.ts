import http from "node:http";

/** sun_path holds 108 bytes including the terminating NUL: the longest path connect(2) takes. */
export const MAX_SOCKET_PATH = 107;

/** Why connect(2) cannot take this local socket path (longer than sun_path holds), or undefined. */
export function socketPathProblem(local: string): string | undefined {
  return Buffer.byteLength(local) > MAX_SOCKET_PATH
    ? `socket path longer than ${MAX_SOCKET_PATH} bytes, cannot connect: ${local}`
    : undefined;
}

/**
 * The socket path of a CRI endpoint or CRI-O `listen` value: unix:///run/crio/crio.sock (as crictl
 * and the kubelet write it) or a bare absolute path; undefined for anything else (other schemes
 * are not CRI endpoints on Linux).
 */
export function socketPathOf(endpoint: string): string | undefined {
  if (endpoint.startsWith("unix://")) return endpoint.slice("unix://".length);
  if (endpoint.startsWith("/")) return endpoint;
  return undefined;
}

/** The server answered, but not with a body (an HTTP error, a redirect, too much, cut off). */
export class AnswerError extends Error {}

/**
 * GET `endpoint` over a unix socket, and nothing else: node:http with `socketPath` never opens a
 * TCP connection, and a redirect is just a non-200 answer (it is not followed). Used for CRI-O's
 * /info and /config on its CRI socket. The deadline holds for the whole exchange (not an idle
 * timeout), and an answer past `maxBytes` is refused.
 */
export function httpGet(
  socketPath: string,
  endpoint: string,
  deadlineMs: number,
  maxBytes: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, body?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        request.destroy();
        reject(error);
      } else resolve(body!);
    };
    // agent: false, so no keep-alive connection outlives the request.
    const request = http.get(
      { socketPath, path: endpoint, headers: { Host: "localhost" }, agent: false },
      (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          const where = response.headers.location
            ? ` (redirect to ${response.headers.location}, not followed)`
            : "";
          finish(new AnswerError(`GET ${endpoint} answered HTTP ${response.statusCode}${where}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes)
            finish(new AnswerError(`GET ${endpoint}: answer larger than ${maxBytes} bytes`));
          else chunks.push(chunk);
        });
        response.on("end", () => finish(undefined, Buffer.concat(chunks).toString("utf8")));
        response.on("error", (error) => finish(error));
        response.on("aborted", () => finish(new AnswerError(`GET ${endpoint}: answer cut off`)));
      },
    );
    const timer = setTimeout(() => {
      finish(
        Object.assign(new Error(`no answer within ${deadlineMs} ms (connected, but nothing came back)`), {
          code: "ETIMEDOUT",
        }),
      );
    }, deadlineMs);
    request.on("error", (error) => finish(error));
  });
}
