// Proof that the engine is real: the Pulumi CLI built by set-up, our language host and command
// provider, a real sshd. up, up again (0 changes), destroy (0 resources), effects checked on disk.
import test from "ava";
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run } from "../../../testing/lib/run";
import { buildPlugins, pulumi, repoRoot, startSshd, type Sshd } from "./helpers";

const program = `
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";

const cfg = new pulumi.Config();
const dir = cfg.require("dir");
const connection = {
  host: "127.0.0.1",
  port: cfg.requireNumber("sshPort"),
  user: cfg.require("sshUser"),
  privateKey: cfg.requireSecret("sshKey"),
};
const local = new command.local.Command("local", {
  create: \`printf '%s' "$GREETING" > \${dir}/local.txt && echo created-local\`,
  delete: \`rm -f \${dir}/local.txt\`,
  environment: { GREETING: cfg.get("greeting") ?? "hello" },
});
const remote = new command.remote.Command("remote", {
  connection,
  create: pulumi.interpolate\`echo "\${local.stdout} on $(hostname)" > \${dir}/remote.txt && cat \${dir}/remote.txt\`,
  delete: \`rm -f \${dir}/remote.txt\`,
});
const copy = new command.remote.CopyToRemote("copy", {
  connection,
  source: new pulumi.asset.StringAsset("copied over sftp\\n"),
  remotePath: \`\${dir}/sub/copied.txt\`,
});
export const remoteOut = remote.stdout;
export const localOut = local.stdout;
export const key = connection.privateKey;
`;

let tmp: string;
let sshd: Sshd;

test.before(async () => {
  await buildPlugins();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), "pi-im-engine-"));
  sshd = await startSshd(tmp);
  const project = path.join(tmp, "project");
  await fs.mkdir(path.join(project, "out"), { recursive: true });
  await fs.writeFile(path.join(project, "Pulumi.yaml"), "name: engine-test\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n    transpileOnly: true\n");
  await fs.writeFile(path.join(project, "package.json"), JSON.stringify({ name: "engine-test", main: "index.ts" }));
  await fs.writeFile(path.join(project, "index.ts"), program);
  await fs.symlink(path.join(repoRoot, "node_modules"), path.join(project, "node_modules"));
});

test.after.always(async () => {
  await sshd?.stop();
});

test.serial("pulumi up, up with 0 changes, destroy with 0 resources, over a real sshd", async (t) => {
  const project = path.join(tmp, "project");
  const home = path.join(tmp, "home");
  const out = path.join(project, "out");
  const p = (args: string[], input?: string) => pulumi(project, home, args, input);

  const init = await p(["stack", "init", "dev"]);
  t.is(init.code, 0, init.stderr);
  for (const [k, v] of [["dir", out], ["sshPort", String(sshd.port)], ["sshUser", sshd.user]] as const) {
    t.is((await p(["config", "set", k, v])).code, 0);
  }
  const secret = await p(["config", "set", "--secret", "sshKey"], sshd.privateKey);
  t.is(secret.code, 0, secret.stderr);
  t.false((await fs.readFile(path.join(project, "Pulumi.dev.yaml"), "utf8")).includes("PRIVATE KEY"), "secret config is stored encrypted");

  const up = await p(["up", "--yes", "--skip-preview"]);
  t.is(up.code, 0, `${up.stdout}\n${up.stderr}`);
  // As upstream, a command's output is streamed into the progress display, line by line.
  t.regex(up.stdout, /command:local:Command local .*created-local/);
  t.regex(up.stdout, new RegExp(`command:remote:Command remote .*created-local on ${os.hostname()}`));
  t.is(await fs.readFile(path.join(out, "local.txt"), "utf8"), "hello");
  t.is((await fs.readFile(path.join(out, "remote.txt"), "utf8")).trim(), `created-local on ${os.hostname()}`);
  t.is(await fs.readFile(path.join(out, "sub/copied.txt"), "utf8"), "copied over sftp\n");

  const outputs = JSON.parse((await p(["stack", "output", "--json"])).stdout) as Record<string, string>;
  t.is(outputs["key"], "[secret]", "the key output stays secret");
  // As upstream: a secret input (the SDK makes every remote connection secret) makes stdout secret.
  t.is(outputs["remoteOut"], "[secret]", "a remote command's output is secret");
  t.is(outputs["localOut"], "created-local", "a local command with no secret input has plain output");
  const revealed = JSON.parse((await p(["stack", "output", "--json", "--show-secrets"])).stdout) as Record<string, string>;
  t.is(revealed["remoteOut"], `created-local on ${os.hostname()}`);
  const state = (await p(["stack", "export"])).stdout;
  t.false(state.includes("PRIVATE KEY"), "no private key in the state in plain text");

  const preview = await p(["preview", "--json"]);
  t.is(preview.code, 0, preview.stderr);
  const summary = JSON.parse(preview.stdout) as { changeSummary?: Record<string, number> };
  t.deepEqual(summary.changeSummary, { same: 4 }, "a second deploy would change nothing");
  const again = await p(["up", "--yes", "--expect-no-changes"]);
  t.is(again.code, 0, `${again.stdout}\n${again.stderr}`);

  // A changed input updates only the resource it feeds, and the change reaches the remote side.
  t.is((await p(["config", "set", "greeting", "hi"])).code, 0);
  const update = await p(["up", "--yes", "--skip-preview"]);
  t.is(update.code, 0, update.stderr);
  t.is(await fs.readFile(path.join(out, "local.txt"), "utf8"), "hi");
  const history = JSON.parse((await p(["stack", "history", "--json"])).stdout) as Array<{ resourceChanges?: Record<string, number> }>;
  t.deepEqual(history[0]?.resourceChanges, { same: 3, update: 1 }, "only the local command was updated");

  const destroy = await p(["destroy", "--yes", "--skip-preview"]);
  t.is(destroy.code, 0, `${destroy.stdout}\n${destroy.stderr}`);
  await t.throwsAsync(fs.access(path.join(out, "local.txt")));
  await t.throwsAsync(fs.access(path.join(out, "remote.txt")));
  const after = JSON.parse((await p(["stack", "export"])).stdout) as { deployment: { resources?: unknown[] } };
  t.is(after.deployment.resources?.length ?? 0, 0, "no resources left");
});

test("a pulumi command run before set-up says to run set-up", async (t) => {
  const fake = path.join(tmp, "fresh-clone");
  await fs.mkdir(path.join(fake, "bin"), { recursive: true });
  await fs.copyFile(path.join(repoRoot, "bin/pulumi"), path.join(fake, "bin/pulumi"));
  await fs.chmod(path.join(fake, "bin/pulumi"), 0o755);
  const result = await run(path.join(fake, "bin/pulumi"), ["version"]);
  t.not(result.code, 0);
  t.regex(result.stderr, /npm run setup/);
});
