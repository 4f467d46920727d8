// The pi-im Pulumi project as the deploy test uses it: a throw-away copy (testing/lib/project.ts)
// with one stack, its own state and passphrase.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { copyProject, pulumiEnv, runPulumi } from "../lib/project.ts";
import type { RunResult } from "../lib/run.ts";

export { repoRoot } from "../lib/project.ts";

export class Project {
  readonly dir: string;
  readonly home: string;
  constructor(readonly stack: string, private readonly extraEnv: Record<string, string> = {}) {
    const base = mkdtempSync(join(tmpdir(), "pi-im-deploy-"));
    this.dir = join(base, "project");
    this.home = join(base, "home");
    copyProject(this.dir);
  }

  pulumi(args: string[], opts: { input?: string; echo?: boolean } = {}): Promise<RunResult> {
    return runPulumi(this.dir, pulumiEnv(this.home, "deploy-test", this.extraEnv), [...args, "--stack", this.stack], opts);
  }

  async init(): Promise<void> {
    const r = await this.pulumi(["stack", "init"]);
    if (r.code !== 0) throw new Error(`stack init failed: ${r.stderr}`);
  }
}

export const stackDir = (p: Project) => dirname(join(p.dir, "stacks", `Pulumi.${p.stack}.yaml`));
