// Test helpers: a throw-away sshd on loopback and a runner for the repo's bin/pulumi.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { pulumiEnv, runPulumi } from "../../../testing/lib/project";
import type { RunResult } from "../../../testing/lib/run";

const run = promisify(execFile);
export const repoRoot = path.resolve(__dirname, "../../..");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export interface Sshd { port: number; user: string; privateKey: string; stop(): Promise<void> }

/** Starts sshd on 127.0.0.1 with its own host key and a key pair for the current user. */
export async function startSshd(dir: string): Promise<Sshd> {
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "user_key")]);
  await fs.copyFile(path.join(dir, "user_key.pub"), path.join(dir, "authorized_keys"));
  await fs.mkdir("/run/sshd", { recursive: true });
  const port = await freePort();
  const config = [
    `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`,
    `PidFile ${dir}/sshd.pid`, "StrictModes no", "UsePAM no", "PasswordAuthentication no", "PermitRootLogin prohibit-password",
    "Subsystem sftp internal-sftp",
  ].join("\n");
  await fs.writeFile(path.join(dir, "sshd_config"), `${config}\n`);
  const child: ChildProcess = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    if (await new Promise<boolean>((res) => { const s = net.connect(port, "127.0.0.1", () => { s.end(); res(true); }); s.on("error", () => res(false)); })) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    user: os.userInfo().username,
    privateKey: await fs.readFile(path.join(dir, "user_key"), "utf8"),
    stop: async () => { child.kill("SIGTERM"); },
  };
}

/** Compiles src/ into .pi-im/plugins (what set-up does), so the engine runs the plugins as they are now. */
export async function buildPlugins(): Promise<void> {
  await run("npx", ["tsc", "-p", path.join(repoRoot, "tools/pulumi-plugins/tsconfig.build.json")], { cwd: repoRoot });
}

/** Runs bin/pulumi in `cwd` with state and home kept inside `home` and a throw-away passphrase. */
export function pulumi(cwd: string, home: string, args: string[], input?: string): Promise<RunResult> {
  return runPulumi(cwd, pulumiEnv(home, "engine-test-passphrase"), args, { input });
}
