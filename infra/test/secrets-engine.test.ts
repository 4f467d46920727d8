// No secret of a stack reaches what `pulumi up` prints or the state in plain text, with the real
// engine and the command provider streaming command output the way upstream's does (each line a
// status message in the progress display, and an ephemeral diagnostic event in --json). The
// program is infra's real Tls component (which makes the site CA and server keys) and a command
// that prints a password, as a careless step might. Controls: a command's ordinary output does
// reach the display, and so does a secret made during the deploy that a command prints with the
// default logging, so the checks below can fail. (The engine masks the values of secret *config*
// in what it prints, but it cannot know a key a command just made: only `logging` keeps it out.)
import test from "ava";
import { randomBytes } from "node:crypto";
import { assertPluginsCurrent, EngineProject, PASSPHRASE } from "./engine";
import { SECRET_SIG } from "./helpers";
import { redactRpcResponse } from "../sdk-log";

const MARKER = "pi-im-progress-marker";
const program = `
import * as pulumi from "@pulumi/pulumi";
import { local } from "@pulumi/command";
import { Tls } from "./infra/components/tls";

const cfg = new pulumi.Config();
const tls = new Tls("tls", { site: "office", domain: "chat.test", names: ["chat.test", "192.168.1.100"], days: 30, keyGroup: "1000", installOn: [] });
const password = cfg.requireSecret("adminPassword");
new local.Command("set-password", {
  create: 'echo "admin password: $PASSWORD"; echo "again on stderr: $PASSWORD" >&2',
  environment: { PASSWORD: password },
  logging: "none",
});
new local.Command("progress", { create: 'echo "${MARKER} on stdout"; echo "${MARKER} on stderr" >&2' });
// A secret made during the deploy, like the keys, printed with the default logging.
const decoy = new local.Command("decoy", { create: "echo decoy-$(openssl rand -hex 12)" }, { additionalSecretOutputs: ["stdout"] });
export const decoyToken = decoy.stdout;
export const caCertificate = tls.caCert;
export const serverKey = tls.key;
export const adminPassword = password;
`;

/** Every string in a `stack export --show-secrets` document, secrets decrypted. */
function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o["4dabf18193072939515e22adb298388d"] === SECRET_SIG && typeof o["plaintext"] === "string") strings(JSON.parse(o["plaintext"]), out);
    else Object.values(o).forEach((x) => strings(x, out));
  }
  return out;
}

/** What would give a private key away: the PEM block, and each base64 line of its body. */
function keyNeedles(text: string): string[] {
  const keys = text.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/g) ?? [];
  return keys.flatMap((k) => [k, ...k.split("\n").map((l) => l.trim()).filter((l) => l.length >= 16 && !l.startsWith("-----"))]);
}

test("pulumi up shows no private key or password, in its display, its --json events or the state", async (t) => {
  t.timeout(600_000);
  assertPluginsCurrent();
  const p = new EngineProject("secrets-display", program);
  const password = `pw-${randomBytes(12).toString("hex")}`;
  const ok = (r: { code: number; stdout: string; stderr: string }, what: string) => t.is(r.code, 0, `${what}:\n${r.stdout}\n${r.stderr}`);

  ok(await p.pulumi(["stack", "init", "dev"]), "stack init");
  ok(await p.pulumi(["config", "set", "--secret", "adminPassword"], password), "config set");

  // Everything that is printed or stored: three deploys (progress display, --diff display, --json
  // events), with a destroy between them so that every command runs (and every key is made) again.
  const printed: Array<{ what: string; text: string }> = [];
  const record = (what: string, r: { code: number; stdout: string; stderr: string }) => {
    ok(r, what);
    printed.push({ what: `${what} (stdout)`, text: r.stdout }, { what: `${what} (stderr)`, text: r.stderr });
    return r;
  };
  const secrets = new Set<string>([password, PASSPHRASE]);
  const decoys: string[] = [];
  const collectSecrets = async () => {
    const exported = await p.pulumi(["stack", "export", "--show-secrets"]);
    ok(exported, "stack export --show-secrets");
    const all = strings(JSON.parse(exported.stdout)).join("\n");
    const needles = keyNeedles(all);
    t.true(needles.length >= 2 * 3, "the CA key and the server key were found in the state");
    needles.forEach((n) => secrets.add(n));
    const outputs = JSON.parse((await p.pulumi(["stack", "output", "--json", "--show-secrets"])).stdout) as Record<string, string>;
    decoys.push(outputs["decoyToken"]!);
    t.is(outputs["adminPassword"], password);
  };

  const display = record("pulumi up", await p.pulumi(["up", "--yes", "--skip-preview"]));
  await collectSecrets();
  record("pulumi preview --diff", await p.pulumi(["preview", "--diff", "--show-sames"]));
  record("pulumi destroy", await p.pulumi(["destroy", "--yes", "--skip-preview"]));
  // (The --diff display shows resources' inputs and outputs; whether it prints status lines depends on timing.)
  record("pulumi up --diff", await p.pulumi(["up", "--yes", "--skip-preview", "--diff", "--show-full-output"]));
  await collectSecrets();
  record("pulumi destroy", await p.pulumi(["destroy", "--yes", "--skip-preview"]));
  const json = record("pulumi up --json", await p.pulumi(["up", "--yes", "--skip-preview", "--json"]));
  await collectSecrets();
  record("pulumi stack output", await p.pulumi(["stack", "output", "--json"]));
  record("pulumi stack export", await p.pulumi(["stack", "export"]));
  record("pulumi stack history", await p.pulumi(["stack", "history", "--json"]));
  for (const f of p.stateFiles()) printed.push({ what: `state file ${f.file}`, text: f.text });

  // The controls: streamed output is there to be seen, a secret printed with default logging too.
  t.regex(display.stdout, new RegExp(`command:local:Command progress .*${MARKER} on stdout`), "command output is streamed into the display");
  t.regex(display.stdout, new RegExp(`command:local:Command progress .*${MARKER} on stderr`));
  const events = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as { diagnosticEvent?: { message: string; ephemeral?: boolean; urn?: string } });
  t.true(events.some((e) => e.diagnosticEvent?.ephemeral && e.diagnosticEvent.message.includes(`${MARKER} on stdout`) && e.diagnosticEvent.urn?.endsWith("::progress")),
    "and arrives in --json as an ephemeral diagnostic event of its resource");
  t.regex(decoys[0]!, /^decoy-[0-9a-f]{24}$/);
  t.true(display.stdout.includes(decoys[0]!), "a secret made during the deploy and printed with the default logging is shown: nothing masks it");
  t.true(events.some((e) => e.diagnosticEvent?.message.includes(decoys[2]!)), "in --json too");

  // The checks: none of the stack's secrets anywhere.
  t.true(secrets.size > 2);
  for (const { what, text } of printed) {
    for (const s of secrets) {
      if (!text.includes(s)) continue;
      // Where it is (the lines around it), with the secrets themselves blanked out.
      const at = text.indexOf(s);
      const from = Math.max(text.lastIndexOf("\n", Math.max(0, at - 300)), 0);
      const excerpt = [...secrets].reduce((x, other) => x.replaceAll(other, "«a secret»"), text.slice(from, at + s.length));
      t.fail(`${what} shows a secret (${s.length} characters) here, secrets blanked: …${excerpt}…`);
    }
  }
  t.pass();
});

test("the SDK's debug messages keep everything but the RPC response", (t) => {
  t.is(redactRpcResponse("RegisterResource RPC finished: resource:tls-cert[command:local:Command]; err: null, resp: urn:x,id,-----BEGIN PRIVATE KEY-----\nAAAA"),
    "RegisterResource RPC finished: resource:tls-cert[command:local:Command]; err: null, resp: (not logged: it may hold secrets)");
  t.is(redactRpcResponse("Invoke RPC finished: tok=x; err: null, resp: secret"), "Invoke RPC finished: tok=x; err: null, resp: (not logged: it may hold secrets)");
  t.is(redactRpcResponse("Registering resource: t=x, name=y"), "Registering resource: t=x, name=y");
});
