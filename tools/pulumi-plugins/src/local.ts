// command:local:Command — run a shell command on the machine that runs `pulumi up`.
import { spawn } from "node:child_process";
import type { OutputLog } from "./output-log";

export interface RunResult { stdout: string; stderr: string }

export interface LocalSpec {
  command: string;
  interpreter?: string[];
  dir?: string;
  environment?: Record<string, string>;
  stdin?: string;
  /** Streams the output as it comes (the `logging` input decides which streams). */
  log?: OutputLog;
}

/** Like the upstream provider: one trailing newline is not part of the output. */
export function trimOutput(s: string): string {
  return s.endsWith("\n") ? s.slice(0, -1) : s;
}

export function commandFailure(command: string, code: number | null, signal: string | null, out: RunResult): Error {
  const why = signal ? `killed by ${signal}` : `exited with status ${code}`;
  const tail = (out.stderr || out.stdout).split("\n").slice(-30).join("\n");
  return new Error(`command ${why}: running ${JSON.stringify(command.length > 200 ? `${command.slice(0, 200)}…` : command)}:\n${tail}`);
}

export function runLocal(spec: LocalSpec): Promise<RunResult> {
  const [shell, ...shellArgs] = spec.interpreter && spec.interpreter.length > 0 ? spec.interpreter : ["/bin/sh", "-c"];
  return new Promise((resolve, reject) => {
    const child = spawn(shell!, [...shellArgs, spec.command], {
      cwd: spec.dir || undefined,
      env: { ...process.env, ...spec.environment },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => { stdout.push(d); spec.log?.stdout?.(d); });
    child.stderr.on("data", (d: Buffer) => { stderr.push(d); spec.log?.stderr?.(d); });
    child.on("error", (err) => void (spec.log?.flush() ?? Promise.resolve()).then(() => reject(err)));
    child.on("close", (code, signal) => {
      const out = { stdout: trimOutput(Buffer.concat(stdout).toString()), stderr: trimOutput(Buffer.concat(stderr).toString()) };
      // Like upstream, every line is delivered before the command's result is.
      void (spec.log?.flush() ?? Promise.resolve()).then(() => {
        if (code === 0) resolve(out);
        else reject(commandFailure(spec.command, code, signal, out));
      });
    });
    child.stdin.on("error", () => {}); // a command that exits without reading its input is not a crash
    child.stdin.end(spec.stdin ?? "");
  });
}
