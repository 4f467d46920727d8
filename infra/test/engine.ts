// The real Pulumi engine for infra tests: a throw-away project (its own index.ts over a copy of
// infra/, testing/lib/project.ts) and bin/pulumi with its state and home kept inside a temp folder
// and a throw-away passphrase.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { copyProgram, pulumiEnv, runPulumi } from "../../testing/lib/project";
import type { RunResult } from "../../testing/lib/run";

export const repoRoot = path.resolve(__dirname, "../..");
export const PASSPHRASE = "infra-engine-test-passphrase";

/** The engine runs the compiled plugins (.pi-im/plugins): they must not be older than their sources. */
export function assertPluginsCurrent(): void {
  const src = path.join(repoRoot, "tools/pulumi-plugins/src");
  for (const f of fs.readdirSync(src).filter((x) => x.endsWith(".ts"))) {
    const js = path.join(repoRoot, ".pi-im/plugins", f.replace(/\.ts$/, ".js"));
    if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(path.join(src, f)).mtimeMs) {
      throw new Error(`${js} is missing or older than tools/pulumi-plugins/src/${f}: run \`npm run setup\` (or npx tsc -p tools/pulumi-plugins/tsconfig.build.json)`);
    }
  }
}

export class EngineProject {
  readonly dir: string;
  readonly home: string;

  constructor(name: string, program: string) {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), `pi-im-${name}-`));
    this.dir = path.join(base, "project");
    this.home = path.join(base, "home");
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(path.join(this.dir, "Pulumi.yaml"), `name: ${name}\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    transpileOnly: true\n`);
    fs.writeFileSync(path.join(this.dir, "package.json"), JSON.stringify({ name, main: "index.ts" }));
    fs.writeFileSync(path.join(this.dir, "index.ts"), program);
    copyProgram(this.dir);
  }

  /** Runs bin/pulumi (non-interactive) in the project. */
  pulumi(args: string[], input?: string): Promise<RunResult> {
    return runPulumi(this.dir, pulumiEnv(this.home, PASSPHRASE), args, { input });
  }

  /** Every file of the local state backend (checkpoints, history, backups), as text. */
  stateFiles(): Array<{ file: string; text: string }> {
    const out: Array<{ file: string; text: string }> = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile()) out.push({ file: p, text: fs.readFileSync(p, "utf8") });
      }
    };
    const state = path.join(this.home, "state");
    if (fs.existsSync(state)) walk(state);
    return out;
  }
}
