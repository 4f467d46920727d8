import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { HostOptions, renderHostSetup, renderHostUndo } from "../render/host";
import { Connection, childOpts, remoteStep } from "./step";

export interface HostArgs extends HostOptions {
  /** Short name used in resource names (the Pi's name in config). */
  pi: string;
  connection: pulumi.Input<Connection>;
}

/** The OS of one Pi: hostname, time zone, locale, admin user and keys, packages, sshd hardening. */
export class Host extends pulumi.ComponentResource {
  readonly setup: remote.Command;
  readonly hostname: pulumi.Output<string>;
  readonly packages: pulumi.Output<string[]>;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:Host", name, {}, opts);
    const { pi, connection, ...options } = args;
    this.setup = remoteStep(`${pi}-host`, { connection, script: renderHostSetup(options), undo: renderHostUndo() }, childOpts(this, opts));
    this.hostname = pulumi.output(options.hostname);
    this.packages = pulumi.output(options.installPackages ? options.packages : []);
    this.registerOutputs({
      hostname: this.hostname,
      timezone: options.timezone,
      adminUser: options.adminUser,
      packages: this.packages,
      sshHardening: options.sshHardening,
      unattendedUpgrades: options.unattendedUpgrades,
    });
  }
}
