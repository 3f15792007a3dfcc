export type CommandResult =
  | { outcome: "ok"; stdout: string; stderr: string; exitCode: number }
  | { outcome: "failed"; stdout: string; stderr: string; exitCode: number | undefined; message: string }
  | { outcome: "timeout"; afterMs: number }
  | { outcome: "missing"; message: string };

export interface CommandOptions {
  timeoutMs: number;
  maxOutputBytes?: number;
  env?: Record<string, string>;
}

/**
 * Runs a program with an argument array (never a shell), a deadline after which it is
 * SIGKILLed, and a cap on how much output is kept.
 */
export async function runCommand(
  file: string,
  args: string[],
  options: CommandOptions,
): Promise<CommandResult> {
  const started = performance.now();
  const { execa } = await import("execa"); // loaded on first use: most runs never start a program
  const child = await execa(file, args, {
    timeout: options.timeoutMs,
    killSignal: "SIGKILL",
    reject: false,
    stdin: "ignore",
    maxBuffer: options.maxOutputBytes ?? 16 * 1024 * 1024,
    env: options.env,
    extendEnv: options.env === undefined,
  });
  if (child.timedOut) return { outcome: "timeout", afterMs: Math.round(performance.now() - started) };
  if ((child as { code?: string }).code === "ENOENT")
    return { outcome: "missing", message: child.shortMessage ?? `${file}: not found` };
  const stdout = String(child.stdout ?? "");
  const stderr = String(child.stderr ?? "");
  if (child.failed) {
    return {
      outcome: "failed",
      stdout,
      stderr,
      exitCode: child.exitCode,
      message: child.shortMessage ?? `${file} failed`,
    };
  }
  return { outcome: "ok", stdout, stderr, exitCode: child.exitCode ?? 0 };
}
