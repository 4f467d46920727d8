// A throw-away copy of the pi-im Pulumi project with its own state, so tests never rewrite the
// stack files in the repo (stack init adds an encryption salt) and never touch a user's state.
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../..");

export interface Run { code: number; stdout: string; stderr: string }

export class Project {
  readonly dir: string;
  readonly home: string;
  constructor(readonly stack: string, private readonly extraEnv: Record<string, string> = {}) {
    const base = mkdtempSync(join(tmpdir(), "pi-im-deploy-"));
    this.dir = join(base, "project");
    this.home = join(base, "home");
    mkdirSync(this.dir, { recursive: true });
    for (const f of ["Pulumi.yaml", "package.json", "tsconfig.base.json"]) cpSync(join(repoRoot, f), join(this.dir, f));
    cpSync(join(repoRoot, "stacks"), join(this.dir, "stacks"), { recursive: true });
    // A copy, not a link: ts-node only compiles files below the folder it was started in.
    cpSync(join(repoRoot, "infra"), join(this.dir, "infra"), { recursive: true, filter: (src) => !/\/(node_modules|test)(\/|$)/.test(src.slice(repoRoot.length)) });
    symlinkSync(join(repoRoot, "node_modules"), join(this.dir, "node_modules"));
  }

  pulumi(args: string[], opts: { input?: string; echo?: boolean } = {}): Promise<Run> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.extraEnv, PI_IM_HOME: this.home, PULUMI_CONFIG_PASSPHRASE: "deploy-test" };
    delete env["PULUMI_HOME"];
    delete env["PULUMI_BACKEND_URL"];
    return new Promise((resolve) => {
      const child = spawn(join(repoRoot, "bin/pulumi"), [...args, "--stack", this.stack, "--non-interactive"], { cwd: this.dir, env });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => { stdout += d; if (opts.echo) process.stderr.write(d); });
      child.stderr.on("data", (d: Buffer) => { stderr += d; if (opts.echo) process.stderr.write(d); });
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.on("error", () => {}); // a command that exits without reading its input is not a crash
      child.stdin.end(opts.input ?? "");
    });
  }

  async init(): Promise<void> {
    const r = await this.pulumi(["stack", "init"]);
    if (r.code !== 0) throw new Error(`stack init failed: ${r.stderr}`);
  }
}

export const stackDir = (p: Project) => dirname(join(p.dir, "stacks", `Pulumi.${p.stack}.yaml`));
