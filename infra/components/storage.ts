import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { StorageOptions, fstabSource, renderStorageScript, renderStorageUndo } from "../render/storage";
import { Connection, childOpts, remoteStep } from "./step";

export interface StorageArgs extends StorageOptions {
  pi: string;
  connection: pulumi.Input<Connection>;
  /** false: use a directory on the SD card at mountPoint; no disk, no fstab line. */
  manage: boolean;
}

/** The USB data disk mounted at /mnt/storage with the IM data and backup directories. */
export class Storage extends pulumi.ComponentResource {
  readonly setup: remote.Command;
  readonly mountPoint: pulumi.Output<string>;

  constructor(name: string, args: StorageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:Storage", name, {}, opts);
    const { pi, connection, manage, ...o } = args;
    const dirsOnly = `set -euo pipefail\n${o.dirs.map((d) => `install -d -m ${d.mode} ${o.mountPoint}/${d.path}\nchown ${d.owner} ${o.mountPoint}/${d.path}`).join("\n")}\n`;
    this.setup = remoteStep(
      `${pi}-storage`,
      manage ? { connection, script: renderStorageScript(o), undo: renderStorageUndo(o.mountPoint) } : { connection, script: dirsOnly },
      childOpts(this, opts),
    );
    this.mountPoint = pulumi.output(o.mountPoint);
    this.registerOutputs({
      mountPoint: this.mountPoint,
      disk: manage ? fstabSource(o.disk) : "none (SD card)",
      directories: o.dirs.map((d) => `${o.mountPoint}/${d.path}`),
      formatIfEmpty: o.format,
    });
  }
}
