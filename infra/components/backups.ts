import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { BackupOptions, renderBackupCron, renderBackupScript, renderRestoreScript } from "../render/backup";
import { COMPOSE_WRAPPER } from "../render/cluster";
import { PRELUDE, writeFile } from "../render/shell";
import { Connection, childOpts, remoteStep } from "./step";

export const BACKUP_BIN = "/usr/local/sbin/pi-im-backup";
export const RESTORE_BIN = "/usr/local/sbin/pi-im-restore";
export const CRON_FILE = "/etc/cron.d/pi-im-backup";
export const BACKUP_KEY_FILE = "/etc/pi-im/backup/id_backup";
export const STATUS_FILE = "/var/lib/pi-im/backup-status.json";

export interface BackupsArgs {
  pi: string;
  connection: pulumi.Input<Connection>;
  schedule: string;
  options: BackupOptions;
  /** Private key for an ssh target (a Pulumi secret); written root-only on the Pi. */
  sshKey?: pulumi.Input<string>;
  knownHosts?: string;
}

/** pi-im-backup / pi-im-restore on the Pi, run daily by cron, with a status file for monitoring. */
export class Backups extends pulumi.ComponentResource {
  readonly install: remote.Command;
  readonly schedule: pulumi.Output<string>;

  constructor(name: string, args: BackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:Backups", name, {}, opts);
    const o = args.options;
    const restore = renderRestoreScript({
      ...o,
      stopCommand: `${COMPOSE_WRAPPER} stop`,
      startCommand: `${COMPOSE_WRAPPER} up -d`,
    });
    const files = [
      writeFile(BACKUP_BIN, renderBackupScript(o), "0755"),
      writeFile(RESTORE_BIN, restore, "0755"),
      writeFile(CRON_FILE, renderBackupCron(args.schedule, BACKUP_BIN), "0644"),
      ...(args.knownHosts ? [writeFile("/etc/pi-im/backup/known_hosts", args.knownHosts, "0644")] : []),
    ];
    const plain = `${PRELUDE}\n${files.join("\n")}\n`;
    // The key makes the whole script secret: Pulumi stores it encrypted and never prints it.
    const script = args.sshKey
      ? pulumi.secret(pulumi.output(args.sshKey).apply((k) => `${plain}${writeFile(BACKUP_KEY_FILE, k.endsWith("\n") ? k : `${k}\n`, "0600")}\n`))
      : pulumi.output(`${plain}rm -f ${BACKUP_KEY_FILE}\n`);
    const undo = `${PRELUDE}\nrm -f ${BACKUP_BIN} ${RESTORE_BIN} ${CRON_FILE} ${BACKUP_KEY_FILE} /etc/pi-im/backup/known_hosts\nlog "backup commands removed; existing backups are kept"\n`;
    this.install = remoteStep(`${args.pi}-backups`, { connection: args.connection, script, undo, secret: !!args.sshKey }, childOpts(this, opts));
    this.schedule = pulumi.output(args.schedule);
    const t = o.target;
    this.registerOutputs({
      schedule: this.schedule,
      backupCommand: BACKUP_BIN,
      restoreCommand: RESTORE_BIN,
      statusFile: o.statusFile,
      target: t.type === "local" ? `local:${t.path}` : `ssh://${t.user}@${t.host}:${t.port}${t.path}`,
      retention: `newest ${o.keep}, none older than ${o.maxAgeDays || "∞"} days`,
    });
  }
}
