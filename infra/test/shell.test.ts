// The rendered scripts' file writes, run by bash: a write that fails ends the script with an error,
// in whatever context the helper is called (bash ignores set -e inside a function called from an
// if, && or || context, which is how `pi_im_write ... || true` used to hide failed writes).
import test from "ava";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PRELUDE, WROTE, writeFile } from "../render/shell";
import { renderTlsInstall, TLS_DIR } from "../render/cluster";
import { asRoot, asRootFromStdin, stampedScripts } from "../components/step";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-shell-"));

function bash(script: string, input?: string) {
  const r = spawnSync("bash", ["-c", script], { encoding: "utf8", input });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** An owner chown refuses even for root. */
const BAD_OWNER = "root:pi-im-no-such-group";

test("a write whose chown fails ends the script: non-zero exit, no 'wrote', no file, no temp file left", (t) => {
  const dir = tmp();
  const r = bash(`${PRELUDE}\n${writeFile(`${dir}/key.pem`, "secret\n", "0640", BAD_OWNER)}\necho after-the-write\n`);
  t.not(r.code, 0);
  t.notRegex(r.stderr, /wrote/);
  t.notRegex(r.stdout, /after-the-write/);
  t.regex(r.stderr, /ERROR: could not write .*key\.pem \(mode 0640, owner root:pi-im-no-such-group\)/);
  t.deepEqual(fs.readdirSync(dir), []);
});

for (const [context, line] of [
  ["after ||", (w: string) => `${w} || true`],
  ["in an if", (w: string) => `if ${w}; then :; fi`],
  ["before &&", (w: string) => `${w} && :`],
  ["in a ! negation", (w: string) => `! ${w}`],
] as const) {
  test(`a failed write ends the script even when called ${context} (where bash ignores set -e)`, (t) => {
    const dir = tmp();
    const r = bash(`${PRELUDE}\n${line(writeFile(`${dir}/f`, "x", "0644", BAD_OWNER))}\necho after-the-write\n`);
    t.not(r.code, 0, r.stderr);
    t.notRegex(r.stderr, /wrote/);
    t.notRegex(r.stdout, /after-the-write/);
  });
}

test("a write fails when its folder cannot be made or its path is a folder", (t) => {
  const dir = tmp();
  fs.writeFileSync(`${dir}/plain-file`, "");
  const under = bash(`${PRELUDE}\n${writeFile(`${dir}/plain-file/x.conf`, "x")}\necho after\n`);
  t.not(under.code, 0);
  t.regex(under.stderr, /ERROR: cannot create the folder of .*plain-file\/x\.conf/);
  fs.mkdirSync(`${dir}/a-folder`);
  const over = bash(`${PRELUDE}\n${writeFile(`${dir}/a-folder`, "x")}\necho after\n`);
  t.not(over.code, 0);
  t.regex(over.stderr, /ERROR: could not move the new .*a-folder into place/);
  t.deepEqual(fs.readdirSync(`${dir}/a-folder`), [], "nothing was moved into the folder");
  t.deepEqual(fs.readdirSync(dir).sort(), ["a-folder", "plain-file"], "no temp file left");
});

test("changed or unchanged is reported in PI_IM_WROTE; an unchanged file is no error without `|| true`", (t) => {
  const dir = tmp();
  const script = (content: string, mode: string) =>
    `${PRELUDE}\n${writeFile(`${dir}/f`, content, mode)}\nif ${WROTE}; then echo changed; else echo unchanged; fi\n`;
  const first = bash(script("v1\n", "0644"));
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout, "changed\n");
  t.regex(first.stderr, /wrote .*\/f/);
  const again = bash(script("v1\n", "0644"));
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, "unchanged\n");
  t.notRegex(again.stderr, /wrote/);
  t.is(bash(script("v1\n", "0600")).stdout, "changed\n", "a new mode is a change");
  t.is((fs.statSync(`${dir}/f`).mode & 0o777).toString(8), "600");
  t.is(bash(script("v2\n", "0600")).stdout, "changed\n");
  t.is(fs.readFileSync(`${dir}/f`, "utf8"), "v2\n");
});

test("the rendered TLS install, as its step runs it: a key that cannot be given its group fails the step and leaves no stamp", (t) => {
  const dir = tmp();
  const tlsDir = `${dir}/tls`;
  const install = renderTlsInstall({ cert: "CERT\n", key: "KEY\n", ca: "CA\n", group: "pi-im-no-such-group" }).replaceAll(TLS_DIR, tlsDir);
  const step = stampedScripts("pi1-tls", install, undefined, "abc123", `${dir}/stamps`);
  const r = bash(asRoot(step.create, "pi1-tls"));
  t.not(r.code, 0, "the step fails");
  t.notRegex(r.stderr, /wrote .*key\.pem/);
  t.regex(r.stderr, /ERROR: could not write .*key\.pem \(mode 0640, owner root:pi-im-no-such-group\)/);
  t.false(fs.existsSync(`${tlsDir}/key.pem`));
  t.false(fs.existsSync(`${dir}/stamps/pi1-tls`), "no stamp: the next up runs the step again");
  // With a group that exists, the same step succeeds and installs every file.
  const good = stampedScripts("pi1-tls", renderTlsInstall({ cert: "CERT\n", key: "KEY\n", ca: "CA\n", group: "root" }).replaceAll(TLS_DIR, tlsDir), undefined, "def456", `${dir}/stamps`);
  const ok = bash(asRoot(good.create, "pi1-tls"));
  t.is(ok.code, 0, ok.stderr);
  t.is(fs.readFileSync(`${tlsDir}/key.pem`, "utf8"), "KEY\n");
  t.is(fs.readFileSync(`${dir}/stamps/pi1-tls`, "utf8"), "def456\n");
});

test("a secret step's script arrives on stdin and runs; an empty stdin is an error", (t) => {
  const dir = tmp();
  const ok = bash(asRootFromStdin("pi1-tls"), `${PRELUDE}\n${writeFile(`${dir}/k`, "KEY\n", "0600")}\n`);
  t.is(ok.code, 0, ok.stderr);
  t.is(fs.readFileSync(`${dir}/k`, "utf8"), "KEY\n");
  const empty = bash(asRootFromStdin("pi1-tls"), "");
  t.not(empty.code, 0);
  t.regex(empty.stderr, /pi1-tls: no script on stdin/);
});
