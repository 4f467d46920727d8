// One remote change on a Pi = one remote.Command made by `remoteStep`:
// - the script travels base64-encoded inside the command and runs as root (sudo -n when the SSH
//   user is not root), so no file has to be copied first and stdin stays free;
// - a script that holds a secret (a key) travels on stdin instead, a secret input Pulumi never
//   prints (the command text is part of a failed command's error message), and the step's output
//   is kept out of the progress display (`logging: "none"`);
// - triggers = the hash of the script, its undo and extra inputs: a changed file replaces the step,
//   an unchanged one leaves `pulumi up` with 0 changes;
// - a stamp file /var/lib/pi-im/stamps/<name> holds the hash of the version that ran last. On
//   replacement Pulumi creates the new version first, then deletes the old: the old `delete`
//   sees a newer stamp and leaves things alone; on destroy the stamp matches and the undo runs.
import * as pulumi from "@pulumi/pulumi";
import { remote, types } from "@pulumi/command";
import "../sdk-log"; // keeps resource outputs (secrets included) out of the SDK's debug messages
import { b64, sha256 } from "../render/shell";

export type Connection = types.input.remote.ConnectionArgs;

export interface StepArgs {
  connection: pulumi.Input<Connection>;
  /** bash script run as root on create (and on update). */
  script: pulumi.Input<string>;
  /** bash script run as root on destroy; omit when there is nothing to undo. */
  undo?: string;
  /** Extra values whose change must re-run the step (e.g. an image tarball's hash). */
  triggers?: pulumi.Input<string>[];
  /** The script holds a secret: it goes on stdin, and nothing the step prints is shown. */
  secret?: boolean;
}

export const STAMP_DIR = "/var/lib/pi-im/stamps";

/**
 * A shell command that runs `script` as root. sudo resets the environment, so SSH_CONNECTION
 * (which the network and firewall guards read to know the address pulumi came through) is passed on.
 */
export function asRoot(script: string, label: string): string {
  return `S="$(printf %s '${b64(script)}' | base64 -d)"; ${runScriptAsRoot(label)}`;
}

/** Like asRoot, for a script that arrives on stdin (one that holds a secret). */
export function asRootFromStdin(label: string): string {
  return `S="$(cat)"; [ -n "$S" ] || { echo "[pi-im] ${label}: no script on stdin" >&2; exit 1; }; ${runScriptAsRoot(label)}`;
}

function runScriptAsRoot(label: string): string {
  return `if [ "$(id -u)" -eq 0 ]; then bash -c "$S" ${label}; else sudo -n env "SSH_CONNECTION=\${SSH_CONNECTION:-}" bash -c "$S" ${label}; fi`;
}

export function stampedScripts(name: string, script: string, undo: string | undefined, hash: string, stampDir = STAMP_DIR): { create: string; del: string } {
  const stamp = `${stampDir}/${name}`;
  const create = `${script}
mkdir -p ${stampDir}
printf '%s\\n' ${hash} > ${stamp}
`;
  const del = `set -euo pipefail
if [ -f ${stamp} ] && [ "$(cat ${stamp})" != ${hash} ]; then
  echo "[pi-im] ${name}: a newer version owns this; leaving it" >&2
  exit 0
fi
${undo ? `( ${"\n"}${undo}\n)` : "true"}
rm -f ${stamp}
`;
  return { create, del };
}

export function remoteStep(name: string, args: StepArgs, opts: pulumi.CustomResourceOptions): remote.Command {
  const scriptOut = pulumi.output(args.script);
  const extra = pulumi.output(args.triggers ?? []);
  const hash = pulumi.all([scriptOut, extra]).apply(([s, t]) => sha256(s, args.undo ?? "", ...t));
  const scripts = pulumi.all([scriptOut, hash]).apply(([s, h]) => stampedScripts(name, s, args.undo, h));
  return new remote.Command(
    name,
    {
      connection: args.connection,
      ...(args.secret
        ? { create: asRootFromStdin(name), stdin: pulumi.secret(scripts.apply((s) => s.create)), logging: "none" as const }
        : { create: scripts.apply((s) => asRoot(s.create, name)) }),
      delete: scripts.apply((s) => asRoot(s.del, name)),
      triggers: [hash],
    },
    opts,
  );
}

/**
 * Options for a component's child: parented to it, and depending on whatever the component was
 * told to depend on (Pulumi does not pass a component's dependsOn down to its children).
 */
export function childOpts(
  parent: pulumi.ComponentResource,
  opts: pulumi.ComponentResourceOptions | undefined,
  ...extra: pulumi.Input<pulumi.Resource>[]
): pulumi.CustomResourceOptions {
  const inherited = opts?.dependsOn;
  const list: pulumi.Input<pulumi.Resource>[] = [];
  if (Array.isArray(inherited)) list.push(...inherited);
  else if (inherited) list.push(inherited as pulumi.Input<pulumi.Resource>);
  return { parent, dependsOn: [...list, ...extra] };
}
