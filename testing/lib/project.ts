// Throw-away copies of the pi-im Pulumi project, and bin/pulumi run with its own state, home and
// passphrase: tests never rewrite the stack files in the repo (stack init adds an encryption
// salt) and never touch a user's state (~/.pi-im).
import { cpSync, existsSync, mkdirSync, symlinkSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { run, type RunOptions, type RunResult } from "./run.js";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** What infra/ imports from outside itself: the shell quoter (infra/render/shell.ts), with the
 * package.json that makes it a CommonJS module as infra/ is. */
const PROGRAM_FILES_OUTSIDE_INFRA = ["tools/pulumi-plugins/package.json", "tools/pulumi-plugins/src/shell-quote.ts"];

/**
 * The Pulumi program (infra/, without its tests, and the shell quoter it shares with the command
 * provider) copied into `dest`, with the repo's node_modules linked beside it. A copy, not a link:
 * ts-node only compiles files below the folder the program was started in.
 */
export function copyProgram(dest: string): void {
  const infra = join(repoRoot, "infra");
  cpSync(infra, join(dest, "infra"), {
    recursive: true,
    filter: (src) => !relative(infra, src).split(sep).some((part) => part === "node_modules" || part === "test"),
  });
  for (const f of PROGRAM_FILES_OUTSIDE_INFRA) cpSync(join(repoRoot, f), join(dest, f));
  if (existsSync(join(infra, "node_modules"))) symlinkSync(join(infra, "node_modules"), join(dest, "infra", "node_modules"));
  symlinkSync(join(repoRoot, "node_modules"), join(dest, "node_modules"));
}

/** The whole project (Pulumi.yaml, package.json, tsconfig.base.json, stacks/ and the program) in `dest`. */
export function copyProject(dest: string): void {
  mkdirSync(dest, { recursive: true });
  for (const f of ["Pulumi.yaml", "package.json", "tsconfig.base.json"]) cpSync(join(repoRoot, f), join(dest, f));
  cpSync(join(repoRoot, "stacks"), join(dest, "stacks"), { recursive: true });
  copyProgram(dest);
}

/** The environment bin/pulumi sees: state and plugin cache under `home`, a throw-away passphrase. */
export function pulumiEnv(home: string, passphrase: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra, PI_IM_HOME: home, PULUMI_CONFIG_PASSPHRASE: passphrase };
  delete env["PULUMI_HOME"];
  delete env["PULUMI_BACKEND_URL"];
  return env;
}

/** Runs the repo's bin/pulumi (non-interactive) in `cwd` with the environment of pulumiEnv. */
export function runPulumi(
  cwd: string,
  env: NodeJS.ProcessEnv,
  args: readonly string[],
  opts: Pick<RunOptions, "input" | "echo"> = {},
): Promise<RunResult> {
  return run(join(repoRoot, "bin/pulumi"), [...args, "--non-interactive"], { cwd, env, ...opts });
}
