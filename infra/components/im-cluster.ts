import * as fs from "node:fs";
import { createHash } from "node:crypto";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { remote } from "@pulumi/command";
import { nodePorts, renderCompose, srvRecords, ComposeOptions, UPLOAD_MAX_BYTES, uploadBodyLimit } from "../render/compose";
import { renderNginxConf } from "../render/nginx";
import {
  ADMIN_COMMAND, CLUSTER_DIR, TLS_DIR, renderClusterDeploy, renderClusterUndo, renderImageLoad, renderImagePull, renderImageRemove,
} from "../render/cluster";
import { Connection, childOpts, remoteStep } from "./step";

/** How an image reaches the Pi: a `docker save | gzip` tarball shipped over SSH, or a registry pull. */
export type ImageSource = { name: string; tarball: string } | { name: string; ref: string };

export interface ImClusterArgs {
  pi: string;
  connection: pulumi.Input<Connection>;
  domain: string;
  nodes: number;
  ports: { http: number; https: number; xmpp: number; xmppDirectTls?: number };
  images: { server: ImageSource; nginx: ImageSource };
  dataDir: string;
  user: string;
  registration: ComposeOptions["registration"];
  maxConnectionsPerAddress?: number;
  internalPortBase: number;
  nodeMemory: string;
  nodeCpus: number;
  nginxMemory: string;
  /** Seconds the deploy waits for every container's health check (default 900: room for a slow board). */
  healthTimeout?: number;
}

export const INCOMING_DIR = "/var/lib/pi-im/incoming";

/** Seconds to wait for healthy containers: a node on an emulated board, 2-3x slower than this
 * machine's, still fits; a broken one is reported with its health checks' output. */
export const HEALTH_TIMEOUT = 900;

/** sha256 of a file, streamed in chunks (image tarballs are hundreds of MB). */
export function fileSha256(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

/** The IM service on one Pi: images, the Compose project (N nodes + nginx), health-checked. */
export class ImCluster extends pulumi.ComponentResource {
  readonly deploy: remote.Command;
  readonly imageSteps: remote.Command[] = [];
  readonly copies: remote.CopyToRemote[] = [];
  readonly services: pulumi.Output<string[]>;
  readonly composeFile: string;
  readonly nginxConf: string;

  constructor(name: string, args: ImClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pi-im:infra:ImCluster", name, {}, opts);
    const { pi, connection } = args;

    const prep = remoteStep(
      `${pi}-incoming`,
      { connection, script: `set -euo pipefail\ninstall -d -m 0750 -o "\${SUDO_USER:-root}" ${INCOMING_DIR}\n`, undo: `rm -rf ${INCOMING_DIR}` },
      childOpts(this, opts),
    );

    const imageIds: string[] = [];
    for (const [role, img] of Object.entries(args.images)) {
      if ("tarball" in img) {
        const hash = this.tarballHash(img.tarball);
        const remotePath = `${INCOMING_DIR}/${role}-${hash.slice(0, 16)}.tar.gz`;
        const source = fs.existsSync(img.tarball) ? new pulumi.asset.FileAsset(img.tarball) : new pulumi.asset.StringAsset("missing");
        const copy = new remote.CopyToRemote(`${pi}-${role}-image-copy`, { connection, source, remotePath, triggers: [hash] }, childOpts(this, opts, prep));
        this.copies.push(copy);
        this.imageSteps.push(
          remoteStep(`${pi}-${role}-image`, { connection, script: renderImageLoad(remotePath, img.name), undo: renderImageRemove(img.name), triggers: [hash] }, childOpts(this, opts, copy)),
        );
        imageIds.push(`${img.name}@sha256-file:${hash}`);
      } else {
        this.imageSteps.push(
          remoteStep(`${pi}-${role}-image`, { connection, script: renderImagePull(img.ref), undo: renderImageRemove(img.ref) }, childOpts(this, opts, prep)),
        );
        imageIds.push(img.ref);
      }
    }
    const imageName = (img: ImageSource) => ("ref" in img ? img.ref : img.name);
    const ports = nodePorts(args.nodes, args.internalPortBase);
    this.composeFile = renderCompose({
      domain: args.domain,
      nodes: args.nodes,
      serverImage: imageName(args.images.server),
      nginxImage: imageName(args.images.nginx),
      dataDir: args.dataDir,
      tlsDir: TLS_DIR,
      nginxConfPath: `${CLUSTER_DIR}/nginx.conf`,
      user: args.user,
      registration: args.registration,
      maxConnectionsPerAddress: args.maxConnectionsPerAddress,
      internalPortBase: args.internalPortBase,
      nodeMemory: args.nodeMemory,
      nodeCpus: args.nodeCpus,
      nginxMemory: args.nginxMemory,
      httpPort: args.ports.http,
      httpsPort: args.ports.https,
      uploadMaxBytes: UPLOAD_MAX_BYTES,
      directTls: args.ports.xmppDirectTls !== undefined,
    });
    this.nginxConf = renderNginxConf({
      domain: args.domain,
      ports: args.ports,
      tlsDir: "/tls",
      // The same limit as the nodes' --upload-max-file-size (renderCompose), so nginx passes every allowed upload.
      maxBodySize: uploadBodyLimit(UPLOAD_MAX_BYTES),
      upstreams: ports.map((p) => ({ host: "127.0.0.1", httpPort: p.httpPort, c2sPort: p.c2sPort, c2sDirectTlsPort: p.c2sDirectTlsPort })),
    });
    const services = [...ports.map((p) => p.name), "nginx"];
    this.deploy = remoteStep(
      `${pi}-cluster`,
      {
        connection,
        script: renderClusterDeploy({
          compose: this.composeFile, nginxConf: this.nginxConf, services, healthTimeout: args.healthTimeout ?? HEALTH_TIMEOUT,
          domain: args.domain, adminService: ports[0]!.name,
        }),
        undo: renderClusterUndo(),
        triggers: imageIds,
      },
      childOpts(this, opts, ...this.imageSteps),
    );
    this.services = pulumi.output(services);
    this.registerOutputs({
      services: this.services,
      composeProject: `${CLUSTER_DIR}/docker-compose.yml`,
      adminCommand: `sudo ${ADMIN_COMMAND} invite`,
      images: Object.fromEntries(Object.entries(args.images).map(([k, v]) => [k, "tarball" in v ? `shipped ${path.basename(v.tarball)} -> ${v.name}` : `pulled ${v.ref}`])),
      endpoints: {
        https: `https://${args.domain}${args.ports.https === 443 ? "" : `:${args.ports.https}`}/`,
        websocket: `wss://${args.domain}${args.ports.https === 443 ? "" : `:${args.ports.https}`}/xmpp-websocket`,
        xmpp: `${args.domain}:${args.ports.xmpp}`,
        ...(args.ports.xmppDirectTls === undefined ? {} : { xmppDirectTls: `${args.domain}:${args.ports.xmppDirectTls}` }),
        // What the site's DNS should hold so clients find the ports (RFC 6120 §3.2.1, XEP-0368).
        dnsSrv: srvRecords(args.domain, args.ports),
      },
    });
  }

  /** The tarball's hash; a missing tarball is a warning in preview and an error in `up`. */
  private tarballHash(file: string): string {
    if (fs.existsSync(file)) return fileSha256(file);
    const msg = `image tarball ${file} does not exist: build the images (npm run setup, tools/images), or set pi-im:cluster.images.<server|nginx>.ref to pull from a registry`;
    if (pulumi.runtime.isDryRun()) {
      pulumi.log.warn(msg, this);
      return "missing";
    }
    throw new Error(msg);
  }
}
