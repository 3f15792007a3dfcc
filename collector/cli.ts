#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { Severity } from "./checks/finding.js";
import type { CollectRequest } from "./collect.js";
import type { Snapshot } from "./snapshot.js";
import { TOOL_NAME, VERSION } from "./version.js";

/**
 * Has V8 optimise only the functions that stay hot. must-gather runs for under a second on cores
 * its two threads keep busy, and with V8's default interrupt budget (132 KiB of bytecode run
 * before a function is looked at) some 150 functions went to TurboFan, many of them hot for a
 * moment only: their compiles took about 0.5 s of the cores' time, as much as either thread's own
 * work. With 540,000: about 50 compiles, and the bench's run 890 -> 830 and 905 -> 795 ms,
 * 150-200 ms less CPU (docs/benchmarks.md). The flag is read whenever a function's budget is
 * reset, so setting it while running takes effect, for the worker started after it too (V8's
 * flags are the process's).
 */
function tierUpLater(): void {
  setFlagsFromString("--interrupt-budget=540000");
}

/** Exit statuses: 0 nothing at or above --fail-on, 1 something is, 2 usage or internal error. */
export const EXIT = { ok: 0, findings: 1, usage: 2 } as const;

export interface Io {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

interface CollectFlags {
  hostRoot: string;
  procRoot?: string;
  criEndpoint?: string;
  crictl?: string;
  criTimeout: number;
  statTimeout: number;
  lookback: number;
  logRules: string[];
  scanFiles: number;
  scanMs: number;
  selinuxCompare: "type" | "full";
}

function positiveInteger(name: string) {
  return (value: string) => {
    const number = Number(value);
    if (!Number.isInteger(number) || number <= 0)
      throw new InvalidArgumentError(`${name} must be a positive integer`);
    return number;
  };
}

/** A path the user named must name something: an empty one would be silently not run. */
function nonEmptyPath(name: string) {
  return (value: string) => {
    if (value === "") throw new InvalidArgumentError(`${name} must not be empty`);
    return value;
  };
}

function addCollectOptions(command: Command): Command {
  command
    .option("--host-root <dir>", "the host's filesystem, e.g. /host in a container", "/")
    .option("--proc-root <dir>", "the host's /proc (default: /proc)")
    .option(
      "--cri-endpoint <url>",
      "CRI endpoint to ask instead of discovering one, e.g. unix:///run/crio/crio.sock",
    );
  addCrictlOption(command);
  return command
    .option("--cri-timeout <ms>", "deadline for each CRI call", positiveInteger("--cri-timeout"), 5000)
    .option(
      "--stat-timeout <ms>",
      "deadline for a stat of a FUSE or network filesystem",
      positiveInteger("--stat-timeout"),
      2000,
    )
    .option(
      "--lookback <hours>",
      "how far back to read the journal and logs",
      positiveInteger("--lookback"),
      24,
    )
    .option("--log-rules <dir>", "a directory of extra log rule packs (repeatable)", collectList, [])
    .option(
      "--scan-files <n>",
      "files the SELinux label scan checks per store",
      positiveInteger("--scan-files"),
      20_000,
    )
    .option(
      "--scan-ms <ms>",
      "milliseconds the SELinux label scan may take per store",
      positiveInteger("--scan-ms"),
      2000,
    )
    .addOption(
      new Option(
        "--selinux-compare <mode>",
        "compare SELinux labels by type (like restorecon) or full context",
      )
        .choices(["type", "full"])
        .default("type"),
    );
}

/**
 * The help says when crictl runs, because a user who names one may expect it to be asked of a
 * runtime that hangs: it is not, and the help says why.
 */
function addCrictlOption(command: Command): Command {
  return command.option(
    "--crictl <path>",
    "the crictl to run instead of looking for one. The collection runs it only when a CRI socket " +
      "answers gRPC with an error (it looks in /usr/bin and /usr/local/bin, with --host-root / " +
      "only); a socket that gives no answer is not asked again with crictl, as that would wait out " +
      "--cri-timeout a second time. must-gather also runs it for crictl info and images",
    nonEmptyPath("--crictl"),
  );
}

function collectList(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function collectRequest(flags: CollectFlags, env: NodeJS.ProcessEnv): CollectRequest {
  return {
    hostRoot: flags.hostRoot,
    procRoot: flags.procRoot,
    criEndpoint: flags.criEndpoint,
    crictl: flags.crictl,
    criTimeoutMs: flags.criTimeout,
    guardedStatMs: flags.statTimeout,
    journalLookbackHours: flags.lookback,
    logRuleDirs: flags.logRules,
    labelScan: { maxFiles: flags.scanFiles, maxMs: flags.scanMs, compare: flags.selinuxCompare },
    nodeName: env.NODE_NAME,
  };
}

async function otlpSink(
  endpoint: string,
  request: CollectRequest,
  intervalSeconds: number,
  log: (line: string) => void,
) {
  const { createOtlpSink, otlpSignalUrl } = await import("./export/otlp.js");
  try {
    otlpSignalUrl(endpoint, "metrics");
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { resolveNodeName } = await import("./collect.js");
  return createOtlpSink({
    endpoint,
    node: await resolveNodeName(request),
    intervalMs: intervalSeconds * 1000,
    log,
  });
}

async function runCollect(request: CollectRequest): Promise<Snapshot> {
  const { collect } = await import("./collect.js");
  return collect(request);
}

/** Writes next to the target and renames, so a full disk leaves no half-written file behind. */
async function writeOutput(file: string, text: string): Promise<void> {
  const temporary = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(temporary, text, { mode: 0o600 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new UsageError(`cannot write ${file}: ${(error as Error).message}`);
  }
}

export function buildProgram(io: Io, setExit: (code: number) => void): Command {
  const program = new Command(TOOL_NAME)
    .description(
      "Explains why container storage on a Kubernetes / OpenShift node is broken, before the node falls over.",
    )
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();

  addCollectOptions(
    program
      .command("collect")
      .description("gather facts about the node's container storage into a snapshot")
      .option("--json", "print the snapshot as JSON")
      .option("--out <file>", "write the snapshot (JSON) to a file"),
  ).action(async (flags: CollectFlags & { json?: boolean; out?: string }) => {
    const snapshot = await runCollect(collectRequest(flags, io.env));
    const { renderJson } = await import("./report/json.js");
    if (flags.out) await writeOutput(flags.out, renderJson(snapshot));
    if (flags.json) io.stdout.write(renderJson(snapshot));
    else {
      const { renderSources } = await import("./report/sources.js");
      io.stdout.write(renderSources(snapshot));
      if (flags.out) io.stdout.write(`snapshot written to ${flags.out}\n`);
    }
    setExit(EXIT.ok);
  });

  addCollectOptions(
    program
      .command("diagnose")
      .description("collect (or read a snapshot) and report findings with remediation")
      .option("--snapshot <file>", "judge a snapshot written by `collect --json` instead of this host")
      .option(
        "--bundle <file>",
        "judge the snapshot in a support bundle from must-gather (.tar.gz, .tar or extracted directory)",
      )
      .option("--json", "print {node, generatedAt, findings, snapshot} as JSON")
      .option("--html <file>", "also write the report as one self-contained HTML file (mode 0600)")
      .addOption(
        new Option("--fail-on <severity>", "exit 1 when a finding is at or above this severity")
          .choices(["critical", "warning", "info", "never"])
          .default("critical"),
      )
      .option(
        "--margin <percent>",
        "warn when a filesystem is within this share of its size of an eviction threshold",
        Number,
        5,
      )
      .option(
        "--probe-slow-ms <ms>",
        "report layer-store operations slower than this",
        positiveInteger("--probe-slow-ms"),
        500,
      ),
  ).action(
    async (
      flags: CollectFlags & {
        snapshot?: string;
        bundle?: string;
        json?: boolean;
        html?: string;
        failOn: Severity | "never";
        margin: number;
        probeSlowMs: number;
      },
      command: Command,
    ) => {
      const inputs = [
        flags.snapshot && "--snapshot",
        flags.bundle && "--bundle",
        command.getOptionValueSource("hostRoot") === "cli" && "--host-root",
      ].filter(Boolean);
      if (inputs.length > 1) {
        throw new UsageError(
          `${inputs.join(" and ")} exclude each other: judge a file, a bundle or a host, one of them`,
        );
      }
      if (!Number.isFinite(flags.margin) || flags.margin < 0 || flags.margin > 100) {
        throw new UsageError("--margin must be a percentage between 0 and 100");
      }
      const bundle = flags.bundle
        ? await (await import("./bundle/reader.js")).readBundle(flags.bundle)
        : undefined;
      const snapshot = bundle
        ? bundle.snapshot
        : flags.snapshot
          ? await (await import("./snapshot-file.js")).readSnapshot(flags.snapshot)
          : await runCollect(collectRequest(flags, io.env));
      const { runChecks } = await import("./checks/registry.js");
      const { severityRank } = await import("./checks/finding.js");
      const findings = runChecks(snapshot, {
        pressureMarginPercent: flags.margin,
        probeSlowMs: flags.probeSlowMs,
      });
      if (flags.json) {
        const { buildReport, renderJson } = await import("./report/json.js");
        io.stdout.write(renderJson(buildReport(snapshot, findings)));
      } else {
        const { renderText, styleFor } = await import("./report/text.js");
        if (bundle) io.stdout.write((await import("./bundle/reader.js")).describeBundle(bundle));
        io.stdout.write(renderText(snapshot, findings, styleFor(io.stdout, io.env)));
      }
      if (flags.html) {
        const { buildReport } = await import("./report/json.js");
        const { renderHtml } = await import("./report/html.js");
        await writeOutput(flags.html, renderHtml(buildReport(snapshot, findings)));
        if (!flags.json) io.stdout.write(`HTML report written to ${flags.html}\n`);
      }
      const failOn = flags.failOn;
      const failing =
        failOn !== "never" && findings.some((f) => severityRank(f.severity) >= severityRank(failOn));
      setExit(failing ? EXIT.findings : EXIT.ok);
    },
  );

  addCollectOptions(
    program
      .command("serve")
      .description("collect on an interval and serve /metrics, /findings, /healthz and /readyz")
      .option(
        "--listen <host:port>",
        "where to listen; 0.0.0.0:9817 in a DaemonSet (see README)",
        "127.0.0.1:9817",
      )
      .option(
        "--interval <seconds>",
        "time between the end of one collection and the start of the next",
        positiveInteger("--interval"),
        60,
      )
      .option("--state-dir <dir>", "keep journal positions here across restarts (the exporter's only writes)")
      .option(
        "--otlp-endpoint <url>",
        "also push metrics and a trace per collection over OTLP/HTTP, e.g. http://otel-collector:4318",
      ),
  ).action(
    async (
      flags: CollectFlags & { listen: string; interval: number; stateDir?: string; otlpEndpoint?: string },
    ) => {
      const { ListenError, parseListen, StateDirError, serve } = await import("./commands/serve.js");
      let listen: ReturnType<typeof parseListen>;
      try {
        listen = parseListen(flags.listen);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const log = (line: string) => io.stderr.write(`${new Date().toISOString()} ${line}\n`);
      const request = collectRequest(flags, io.env);
      const server = await serve({
        listen,
        intervalMs: flags.interval * 1000,
        collect: request,
        stateDir: flags.stateDir,
        sinks: flags.otlpEndpoint ? [await otlpSink(flags.otlpEndpoint, request, flags.interval, log)] : [],
        log,
      }).catch((error) => {
        throw error instanceof ListenError || error instanceof StateDirError
          ? new UsageError(error.message)
          : error;
      });
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      await server.close();
      setExit(EXIT.ok);
    },
  );

  program
    .command("selinux-scan")
    .description("audit the SELinux labels of every file of the image stores (or of PATH), without a budget")
    .argument("[path...]", "host paths to scan instead of the node's stores")
    .option("--host-root <dir>", "the host's filesystem, e.g. /host in a container", "/")
    .option("--proc-root <dir>", "the host's /proc (default: /proc)")
    .option("--json", "print the result as JSON")
    .addOption(
      new Option("--selinux-compare <mode>", "compare labels by type (like restorecon) or full context")
        .choices(["type", "full"])
        .default("type"),
    )
    .action(
      async (
        paths: string[],
        flags: { hostRoot: string; procRoot?: string; json?: boolean; selinuxCompare: "type" | "full" },
      ) => {
        const { selinuxScan } = await import("./commands/selinux-scan.js");
        const stderr = io.stderr as Io["stderr"] & { isTTY?: boolean };
        setExit(
          await selinuxScan(
            {
              hostRoot: flags.hostRoot,
              procRoot: flags.procRoot,
              paths,
              compare: flags.selinuxCompare,
              json: Boolean(flags.json),
            },
            { stdout: io.stdout, stderr },
          ),
        );
      },
    );

  addCollectOptions(
    program
      .command("must-gather")
      .description("write the node's support bundle (.tar.gz, secrets masked; see docs/bundle.md)")
      .requiredOption("-o, --output <file>", "the bundle to write, or - for stdout")
      .option("--since <duration>", "journal and log window, e.g. 24h, 90m, 2h0m0s", "24h")
      .option("--max-size <size>", "the most the .tar.gz may take, e.g. 20MB, 64MiB", "20MB")
      .option("--timeout <duration>", "deadline of the whole run", "120s")
      .option("--step-timeout <duration>", "deadline of each gathering step", "30s")
      .option("--obfuscate", "replace host names and IP addresses by consistent tokens"),
  ).action(async (flags: MustGatherFlags, command: Command) => {
    tierUpLater();
    // The journal worker starts now, on the other core, and loads what it reads with while
    // this thread loads must-gather; must-gather gives it its job (or ends it: no journal).
    const { AheadWorker } = await import("./bundle/journal-worker-ahead.js");
    const journalWorker = new AheadWorker();
    try {
      await mustGatherCommand(flags, command, journalWorker);
    } finally {
      await journalWorker.stop();
    }
    setExit(EXIT.ok);
  });

  type MustGatherFlags = CollectFlags & {
    output: string;
    since: string;
    maxSize: string;
    timeout: string;
    stepTimeout: string;
    obfuscate?: boolean;
  };

  async function mustGatherCommand(
    flags: MustGatherFlags,
    command: Command,
    journalWorker: import("./bundle/journal-worker-ahead.js").AheadWorker,
  ): Promise<void> {
    const { mustGather, MustGatherError, parseDuration, parseSize } = await import(
      "./commands/must-gather.js"
    );
    const parse = <T>(name: string, value: string, parser: (v: string) => T): T => {
      try {
        return parser(value);
      } catch (error) {
        throw new UsageError(`${name}: ${(error as Error).message}`);
      }
    };
    const sinceMs = parse("--since", flags.since, parseDuration);
    const request = collectRequest(flags, io.env);
    if (command.getOptionValueSource("lookback") !== "cli")
      request.journalLookbackHours = Math.max(1, Math.ceil(sinceMs / 3_600_000));
    const stdout = io.stdout as unknown as import("node:stream").Writable;
    if (flags.output === "-" && typeof stdout.on !== "function")
      throw new UsageError("-o - needs a stream for stdout");
    if (flags.output === "-" && io.stdout.isTTY)
      throw new UsageError("-o - writes a gzip archive: redirect stdout to a file or a pipe");
    try {
      await mustGather(
        {
          collect: request,
          output: flags.output,
          sinceMs,
          maxBytes: parse("--max-size", flags.maxSize, parseSize),
          timeoutMs: parse("--timeout", flags.timeout, parseDuration),
          stepTimeoutMs: parse("--step-timeout", flags.stepTimeout, parseDuration),
          obfuscate: Boolean(flags.obfuscate),
          searchPath: io.env.PATH ?? "",
          journalWorker,
        },
        { stdout, stderr: io.stderr as Io["stderr"] & { isTTY?: boolean } },
      );
    } catch (error) {
      if (error instanceof MustGatherError) throw new UsageError(error.message);
      throw error;
    }
  }

  return program;
}

/** Runs the CLI and returns the exit status; never calls process.exit itself. */
export async function main(argv: string[], io: Io): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with exit code 0; everything else is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const { SnapshotError } = await import("./snapshot-file.js");
    const known = error instanceof UsageError || error instanceof SnapshotError;
    io.stderr.write(
      `${TOOL_NAME}: ${known ? (error as Error).message : ((error as Error).stack ?? String(error))}\n`,
    );
    return EXIT.usage;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  let code: number = EXIT.ok;
  // A reader that goes away (`| head`) ends the output quietly, as it ends any Unix tool's.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(code);
    throw error;
  });
  code = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  });
  // Exit explicitly: a stat stuck in a hung mount must not keep the process alive after the report.
  // But only once the report is out: writes to a pipe are asynchronous, and process.exit() drops
  // what the reader has not taken yet (`diagnose --json | jq` would get the first 64 KiB).
  await Promise.all([process.stdout, process.stderr].map(flushed));
  process.exit(code);
}

/** Resolves when everything written to the stream before has been handed to the OS (or failed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) resolve();
    else stream.write("", () => resolve());
  });
}
