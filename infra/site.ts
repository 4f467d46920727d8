// Wires the components for a validated site config: per Pi Host -> Network, Storage, Firewall;
// one Tls for the site installed on every Pi; then Backups and the ImCluster per Pi.
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { ImageConfig, PiConfig, SiteConfig, expandPath } from "./config";
import type { Secrets } from "./config-load";
import { Backups } from "./components/backups";
import { Firewall } from "./components/firewall";
import { Host } from "./components/host";
import { ImCluster, ImageSource } from "./components/im-cluster";
import { Network } from "./components/network";
import { Storage } from "./components/storage";
import { Tls } from "./components/tls";
import { Connection } from "./components/step";
import { CLUSTER_DIR } from "./render/cluster";
import { BackupTarget } from "./render/backup";
import { BACKUP_KEY_FILE, STATUS_FILE } from "./components/backups";

export interface BuildOptions {
  stack: string;
  env?: Readonly<Record<string, string | undefined>>;
}

export interface PiComponents {
  host: Host;
  network: Network;
  storage: Storage;
  firewall: Firewall;
  backups?: Backups;
  cluster: ImCluster;
}

export function connectionFor(pi: PiConfig, site: SiteConfig, key: pulumi.Output<string>): pulumi.Output<Connection> {
  return pulumi.secret(
    key.apply((privateKey) => ({
      host: pi.host,
      port: pi.port,
      user: pi.user ?? site.ssh.user,
      privateKey,
      dialErrorLimit: site.ssh.dialErrorLimit,
      perDialTimeout: site.ssh.perDialTimeout,
    })),
  );
}

const DEFAULT_TAGS = { server: "pi-im/im-server:latest", nginx: "pi-im/nginx:bookworm" };

/**
 * Where an image comes from: a registry ref, a tarball, or an index written by tools/images
 * ({file, tags}) naming the newest tarball. A missing index leaves a tarball path that does not
 * exist, which ImCluster reports (warning in preview, error in up).
 */
export function imageSource(role: "server" | "nginx", img: ImageConfig, arch: string, env: Readonly<Record<string, string | undefined>>): ImageSource {
  const expand = (p: string) => expandPath(p, env).replace(/\{arch\}/g, arch);
  if (img.ref) return { name: img.name ?? img.ref, ref: img.ref };
  if (img.tarball) return { name: img.name ?? DEFAULT_TAGS[role], tarball: expand(img.tarball) };
  const index = expand(img.index!);
  if (!fs.existsSync(index)) return { name: img.name ?? DEFAULT_TAGS[role], tarball: `${index.replace(/\.json$/, "")}.tar.gz (no ${index}; build it: tools/images)` };
  const data = JSON.parse(fs.readFileSync(index, "utf8")) as { file?: string; tags?: string[] };
  if (!data.file) throw new Error(`${index}: no "file" in the image index; rebuild with tools/images`);
  return { name: img.name ?? data.tags?.[0] ?? DEFAULT_TAGS[role], tarball: data.file };
}

export function buildSite(site: SiteConfig, secrets: Secrets, opts: BuildOptions) {
  const env = opts.env ?? process.env;
  const components: Record<string, PiComponents> = {};
  const hosts: Record<string, Host> = {};
  const connections: Record<string, pulumi.Output<Connection>> = {};

  for (const pi of site.pis) {
    const connection = connectionFor(pi, site, secrets.sshPrivateKey);
    connections[pi.name] = connection;
    hosts[pi.name] = new Host(pi.name, {
      pi: pi.name,
      connection,
      hostname: pi.hostname ?? pi.name,
      timezone: site.timezone,
      locale: site.locale,
      adminUser: site.admin.user ?? pi.user ?? site.ssh.user,
      authorizedKeys: site.admin.authorizedKeys,
      installPackages: site.host.installPackages,
      packages: [...site.host.packages, ...site.host.extraPackages],
      unattendedUpgrades: site.host.unattendedUpgrades,
      sshHardening: site.host.sshHardening,
    });
  }

  const names = [site.domain, ...site.tls.extraNames];
  for (const pi of site.pis) names.push(pi.hostname ?? pi.name, `${pi.hostname ?? pi.name}.local`, pi.host);
  const gid = (owner: string) => owner.split(":")[1] ?? "0";
  const tls = new Tls(`tls-${opts.stack}`, {
    site: opts.stack,
    domain: site.domain,
    names,
    days: site.tls.days,
    provided: site.tls.mode === "provided" && secrets.tlsCert && secrets.tlsKey ? { cert: secrets.tlsCert, key: secrets.tlsKey } : undefined,
    keyGroup: gid(site.pis[0]!.storage.owner),
    installOn: site.pis.map((pi) => ({ pi: pi.name, connection: connections[pi.name]!, dependsOn: [hosts[pi.name]!] })),
  });

  const out: Record<string, unknown> = {};
  const endpoints: Record<string, unknown> = {};
  site.pis.forEach((pi, i) => {
    const connection = connections[pi.name]!;
    const host = hosts[pi.name]!;
    const after = (...r: pulumi.Resource[]) => ({ dependsOn: r });
    const network = new Network(pi.name, {
      pi: pi.name, connection, manage: pi.network.manage, connectHost: pi.host,
      interface: pi.network.interface, mode: pi.network.mode, address: pi.network.address,
      gateway: pi.network.gateway, dns: pi.network.dns, stack: pi.network.stack,
      allowAddressChange: pi.network.allowAddressChange,
    }, after(host));
    const s = pi.storage;
    const dataDir = `${s.mountPoint}/${s.dataDir}`;
    const storage = new Storage(pi.name, {
      pi: pi.name, connection, manage: s.manage, disk: s.disk ?? {}, mountPoint: s.mountPoint, fsType: s.fsType,
      format: s.format, formatLabel: s.formatLabel,
      dirs: [
        { path: s.dataDir, owner: s.owner, mode: "0750" },
        { path: "backups", owner: "0:0", mode: "0700" },
        // 0711: the nodes' user takes the SQLite snapshot into its own 0700 folder in here.
        { path: ".pi-im-staging", owner: "0:0", mode: "0711" },
      ],
    }, after(host));
    const firewall = new Firewall(pi.name, {
      pi: pi.name, connection, sshPort: site.ports.ssh, sshRateLimit: site.firewall.sshRateLimit,
      sshAllowFrom: site.firewall.sshAllowFrom, trusted: site.firewall.trusted,
      ports: site.ports, extra: site.firewall.extra, logging: site.firewall.logging,
    }, after(host, network));
    const cluster = new ImCluster(pi.name, {
      pi: pi.name, connection, domain: site.domain, nodes: site.cluster.nodes, ports: site.ports,
      images: {
        server: imageSource("server", site.cluster.images.server, pi.arch, env),
        nginx: imageSource("nginx", site.cluster.images.nginx, pi.arch, env),
      },
      dataDir, user: s.owner, registration: site.cluster.registration,
      maxConnectionsPerAddress: site.cluster.maxConnectionsPerAddress,
      internalPortBase: site.cluster.internalPortBase, nodeMemory: site.cluster.nodeMemory,
      nodeCpus: site.cluster.nodeCpus, nginxMemory: site.cluster.nginxMemory,
    }, after(storage, firewall, tls));
    let backups: Backups | undefined;
    if (site.backups.enabled) {
      const t = site.backups.target ?? { type: "local" as const, path: `${s.mountPoint}/backups` };
      const target: BackupTarget = t.type === "local" ? t : {
        type: "ssh", host: t.host, port: t.port, user: t.user, path: t.path, keyFile: BACKUP_KEY_FILE,
        knownHostsFile: t.knownHosts ? "/etc/pi-im/backup/known_hosts" : undefined,
      };
      backups = new Backups(pi.name, {
        pi: pi.name, connection, schedule: site.backups.schedule,
        sshKey: t.type === "ssh" ? secrets.backupSshKey : undefined,
        knownHosts: t.type === "ssh" ? t.knownHosts : undefined,
        options: {
          dataDir, configDirs: [CLUSTER_DIR], target, keep: site.backups.keep, maxAgeDays: site.backups.maxAgeDays,
          includeUploads: site.backups.includeUploads, stagingDir: `${s.mountPoint}/.pi-im-staging`,
          statusFile: STATUS_FILE, logFile: "/var/log/pi-im-backup.log", lockFile: "/run/lock/pi-im-backup.lock",
          dataOwner: s.owner,
        },
      }, after(storage, cluster));
    }
    components[pi.name] = { host, network, storage, firewall, backups, cluster };
    out[pi.name] = {
      index: i,
      ssh: `${pi.user ?? site.ssh.user}@${pi.host}:${pi.port}`,
      hostname: host.hostname,
      address: network.address,
      firewall: firewall.rules,
      mountPoint: storage.mountPoint,
      services: cluster.services,
      backupSchedule: backups?.schedule ?? "disabled",
    };
    endpoints[pi.name] = {
      https: `https://${pi.host}${site.ports.https === 443 ? "" : `:${site.ports.https}`}/`, xmpp: `${pi.host}:${site.ports.xmpp}`,
      ...(site.ports.xmppDirectTls === undefined ? {} : { xmppDirectTls: `${pi.host}:${site.ports.xmppDirectTls}` }),
    };
  });
  return { tls, components, pis: out, endpoints };
}
