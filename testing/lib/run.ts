// Runs a command to its end and collects what it printed: the one spawn-and-capture helper of the
// tests and the harness (bin/pulumi, ssh to the emulated board, the load runner, chat clients).
import { spawn } from "node:child_process";

export interface RunResult {
  /** The exit status; -1 when the command was killed by a signal or could not be started. */
  code: number;
  /** The signal that ended the command (the timeout's SIGKILL, for one), or null. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin, which is then closed (default: closed at once). */
  input?: string;
  /** Killed with SIGKILL after this long. */
  timeoutMs?: number;
  /** Also copy the output to our stderr as it arrives (long runs whose progress goes to a CI log). */
  echo?: boolean;
}

/** Never throws: a failed, killed or missing command is a result (code, signal, stderr), not a crash. */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let done = false;
    const finish = (r: Omit<RunResult, "stdout" | "stderr">) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      resolve({ ...r, stdout, stderr });
    };
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); if (opts.echo) process.stderr.write(d); });
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); if (opts.echo) process.stderr.write(d); });
    const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
    child.on("error", (err) => { stderr += `${command}: ${err.message}\n`; finish({ code: -1, signal: null }); });
    child.on("close", (code, signal) => finish({ code: code ?? -1, signal }));
    // A command may exit without reading its input (ssh to a host going down): a result, not a crash.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}
