// The real Pulumi engine for infra tests: a throw-away project (with a copy of infra/, as ts-node
// compiles only files below the program folder) and bin/pulumi with its state and home kept inside
// a temp folder and a throw-away passphrase.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const repoRoot = path.resolve(__dirname, "../..");
export const PASSPHRASE = "infra-engine-test-passphrase";

export interface PulumiResult { code: number; stdout: string; stderr: string }

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
    fs.cpSync(path.join(repoRoot, "infra"), path.join(this.dir, "infra"), { recursive: true, filter: (src) => !/\/(node_modules|test)(\/|$)/.test(src.slice(repoRoot.length)) });
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(this.dir, "node_modules"));
  }

  /** Runs bin/pulumi (non-interactive) in the project. */
  pulumi(args: string[], input?: string): Promise<PulumiResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, PI_IM_HOME: this.home, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
    delete env["PULUMI_HOME"];
    delete env["PULUMI_BACKEND_URL"];
    return new Promise((resolve) => {
      const child = spawn(path.join(repoRoot, "bin/pulumi"), [...args, "--non-interactive"], { cwd: this.dir, env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.on("error", () => {});
      child.stdin.end(input ?? "");
    });
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
