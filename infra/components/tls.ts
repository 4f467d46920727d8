import * as pulumi from "@pulumi/pulumi";
import { local, remote } from "@pulumi/command";
import { pemBlocks, renderCaScript, renderLeafScript } from "../render/tls";
import { renderTlsInstall, renderTlsUndo } from "../render/cluster";
import { Connection, childOpts, remoteStep } from "./step";

export interface TlsTarget {
  pi: string;
  connection: pulumi.Input<Connection>;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export interface TlsArgs {
  site: string;
  domain: string;
  /** Every name clients may use: domain, hostnames, addresses. */
  names: string[];
  days: number;
  /** User-provided certificate (chain) and key, both secrets; else a self-signed site CA. */
  provided?: { cert: pulumi.Input<string>; key: pulumi.Input<string> };
  /** gid that may read key.pem (the IM nodes' group). */
  keyGroup: string;
  installOn: TlsTarget[];
}

/** The site's TLS certificate: a self-signed CA made once (kept as a secret) or a provided one. */
export class Tls extends pulumi.ComponentResource {
  /** Public: the CA certificate clients can import (empty for provided certificates). */
  readonly caCert: pulumi.Output<string>;
  readonly cert: pulumi.Output<string>;
  readonly key: pulumi.Output<string>;
  readonly installs: remote.Command[] = [];

  constructor(name: string, args: TlsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:Tls", name, {}, opts);
    if (args.provided) {
      this.cert = pulumi.output(args.provided.cert);
      this.key = pulumi.secret(args.provided.key);
      this.caCert = pulumi.output("");
    } else {
      // No triggers: the CA is made on the first `pulumi up` and kept in the (encrypted) state.
      // The keys are on stdout: `logging: "none"` keeps them out of the progress display.
      const ca = new local.Command(`${name}-ca`, { create: renderCaScript(args.site), logging: "none" }, { parent: this, additionalSecretOutputs: ["stdout"] });
      // The CA certificate is public; its key stays inside the secret stdout.
      const caCert = pulumi.unsecret(ca.stdout.apply((s) => pemBlocks(s).certs[0] ?? ""));
      const leaf = new local.Command(
        `${name}-cert`,
        {
          create: renderLeafScript(args.domain, args.names, args.days),
          stdin: pulumi.secret(ca.stdout),
          logging: "none",
          triggers: [args.domain, ...args.names, String(args.days), caCert],
        },
        { parent: this, additionalSecretOutputs: ["stdout"] },
      );
      this.caCert = caCert;
      this.cert = pulumi.unsecret(leaf.stdout.apply((s) => pemBlocks(s).certs.join("")));
      this.key = pulumi.secret(leaf.stdout.apply((s) => pemBlocks(s).key ?? ""));
    }
    for (const t of args.installOn) {
      const script = pulumi.secret(
        pulumi.all([this.cert, this.key, this.caCert]).apply(([cert, key, ca]) =>
          renderTlsInstall({ cert, key, ca: ca || undefined, group: args.keyGroup }),
        ),
      );
      this.installs.push(
        remoteStep(`${t.pi}-tls`, { connection: t.connection, script, undo: renderTlsUndo(), secret: true }, childOpts(this, opts, ...(t.dependsOn ?? []))),
      );
    }
    this.registerOutputs({ caCert: this.caCert, cert: this.cert, names: args.names, mode: args.provided ? "provided" : "self-signed" });
  }
}
