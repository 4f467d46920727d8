import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { FirewallOptions, firewallRules, renderFirewallScript, renderFirewallUndo } from "../render/firewall";
import { Connection, childOpts, remoteStep } from "./step";

export interface FirewallArgs extends FirewallOptions {
  pi: string;
  connection: pulumi.Input<Connection>;
}

/** ufw with default deny incoming, rate-limited SSH, the IM ports and extra rules. */
export class Firewall extends pulumi.ComponentResource {
  readonly apply: remote.Command;
  /** The ufw rules declared, as ufw syntax. */
  readonly rules: pulumi.Output<string[]>;

  constructor(name: string, args: FirewallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:Firewall", name, {}, opts);
    const { pi, connection, ...options } = args;
    this.apply = remoteStep(`${pi}-firewall`, { connection, script: renderFirewallScript(options), undo: renderFirewallUndo() }, childOpts(this, opts));
    this.rules = pulumi.output(firewallRules(options).map((r) => r.rule));
    this.registerOutputs({ rules: this.rules, defaultIncoming: "deny" });
  }
}
