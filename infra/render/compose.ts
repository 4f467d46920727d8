// The Docker Compose project on each Pi: N IM server nodes on loopback ports, nginx in front with
// the host network (so ufw, not Docker's iptables, decides who reaches 80/443/5222).
// Format "3.8" so both Debian's docker-compose 1.29 (run with --compatibility, which maps
// deploy.resources to real limits) and Compose v2 accept it.
import { Document, isScalar, visit } from "yaml";

export interface ComposeOptions {
  domain: string;
  nodes: number;
  serverImage: string;
  nginxImage: string;
  /** Host directory with the IM data (SQLite, uploads), mounted at /data in the nodes. */
  dataDir: string;
  /** Host directory with cert.pem/key.pem, mounted read-only at /tls. */
  tlsDir: string;
  /** Host path of the rendered nginx.conf. */
  nginxConfPath: string;
  /** uid:gid the IM nodes run as; owns dataDir. */
  user: string;
  registration: "invite" | "open" | "closed";
  /** The nodes' limits.maxConnectionsPerAddress (default: the server's own, 100). */
  maxConnectionsPerAddress?: number;
  internalPortBase: number;
  nodeMemory: string;
  nodeCpus: number;
  nginxMemory: string;
  /** nginx's plain-HTTP port, probed by its health check. */
  httpPort: number;
  /** nginx's HTTPS port: XEP-0363 upload URLs and the XEP-0156 WebSocket URL handed to clients point there. */
  httpsPort: number;
  /** Largest file upload in bytes (default UPLOAD_MAX_BYTES); nginx's body limit must match (uploadBodyLimit). */
  uploadMaxBytes?: number;
  /** The nodes also listen for XEP-0368 direct TLS (nginx passes ports.xmppDirectTls to them). */
  directTls?: boolean;
}

/** The IM server's own default (upload.maxFileSize). */
export const UPLOAD_MAX_BYTES = 100 * 1024 * 1024;

/** Where clients PUT and GET files: through nginx, which proxies / to the nodes' /upload/. */
export function uploadUrl(domain: string, httpsPort: number): string {
  return `https://${domain}${httpsPort === 443 ? "" : `:${httpsPort}`}/upload`;
}

/** The WebSocket endpoint as browsers reach it through nginx, named in /.well-known/host-meta (XEP-0156):
 * nginx passes Host without the port, so the nodes are told the URL rather than derive it. */
export function websocketUrl(domain: string, httpsPort: number): string {
  return `wss://${domain}${httpsPort === 443 ? "" : `:${httpsPort}`}/xmpp-websocket`;
}

/** SRV records for the site's DNS zone: clients look these up to find the XMPP ports. */
export function srvRecords(domain: string, ports: { xmpp: number; xmppDirectTls?: number }): string[] {
  const records = [`_xmpp-client._tcp.${domain}. 3600 IN SRV 5 0 ${ports.xmpp} ${domain}.`];
  if (ports.xmppDirectTls !== undefined) records.unshift(`_xmpps-client._tcp.${domain}. 3600 IN SRV 0 0 ${ports.xmppDirectTls} ${domain}.`);
  return records;
}

/** nginx's client_max_body_size for uploads of up to `bytes` (a PUT body is the file itself). */
export function uploadBodyLimit(bytes: number = UPLOAD_MAX_BYTES): string {
  return String(bytes);
}

export interface NodePorts {
  name: string;
  httpPort: number;
  c2sPort: number;
  /** XEP-0368 direct TLS, used when the site publishes ports.xmppDirectTls. */
  c2sDirectTlsPort: number;
}

/** Offsets from cluster.internalPortBase of node 1's loopback ports: c2s, HTTP, direct TLS. */
export const NODE_PORT_OFFSETS = [222, 280, 323] as const;

/** Loopback ports of node i (1-based): base+222+i-1 for c2s, base+280+i-1 for HTTP, base+323+i-1 for direct TLS. */
export function nodePorts(nodes: number, base: number): NodePorts[] {
  const [c2s, http, directTls] = NODE_PORT_OFFSETS;
  return Array.from({ length: nodes }, (_, i) => ({
    name: `node${i + 1}`,
    httpPort: base + http + i,
    c2sPort: base + c2s + i,
    c2sDirectTlsPort: base + directTls + i,
  }));
}

/** Health check timing, for a Pi that may be 2-3x slower than it should be (emulated, busy, throttled). */
export const HEALTHCHECK = {
  interval: "15s",
  /** docker exec on an emulated arm64 board alone takes seconds. */
  timeout: "15s",
  readTimeoutSeconds: 10,
  retries: 3,
  /** Failures in the first minutes do not count: a slow board opens SQLite and warms up first. */
  startPeriod: "180s",
} as const;

/**
 * The nodes' health check: a bash script (bash is in every pi-im image) that asks the node's own
 * GET /health over /dev/tcp and passes only on a 200 status line. A check costs one bash start,
 * not a Node.js start (seconds on an emulated Pi, and a real Pi's CPU every interval). A failure
 * prints the answer (e.g. 503 with the storage problem), which `docker inspect` keeps in the
 * container's health log.
 */
export function healthProbe(httpPort: number, readTimeoutSeconds: number = HEALTHCHECK.readTimeoutSeconds): string {
  return [
    `exec 3<>/dev/tcp/127.0.0.1/${httpPort} || { echo "/health: nothing listens on 127.0.0.1:${httpPort}"; exit 1; }`,
    `printf 'GET /health HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3`,
    `IFS= read -r -t ${readTimeoutSeconds} status <&3 || { echo "/health: no answer within ${readTimeoutSeconds}s"; exit 1; }`,
    `status=\${status%$'\\r'}`,
    `case $status in "HTTP/1."[01]" 200" | "HTTP/1."[01]" 200 "*) exit 0 ;; esac`,
    // Skip the headers; the body says why (JSON from the node).
    `while IFS= read -r -t 2 h <&3 && [ -n "\${h%$'\\r'}" ]; do :; done`,
    `echo "/health: $status $(head -c 300 <&3)"`,
    `exit 1`,
  ].join("\n");
}

export function renderCompose(o: ComposeOptions): string {
  if (o.nodes < 1) throw new Error("renderCompose: nodes must be at least 1");
  const logging = { driver: "json-file", options: { "max-size": "10m", "max-file": "3" } };
  const services: Record<string, unknown> = {};
  for (const n of nodePorts(o.nodes, o.internalPortBase)) {
    services[n.name] = {
      image: o.serverImage,
      entrypoint: ["node", "/app/bin/pi-im-server.js"],
      // Host network, bound to loopback: nginx reaches a node from 127.0.0.1 (which the node
      // trusts to carry TLS-terminated WebSocket), with no docker-proxy hop on the Pi's CPU.
      // --proxy-protocol: nginx's stream passthroughs (c2s, direct TLS) open every connection with
      // a PROXY header naming the client, so per-address limits see clients, not 127.0.0.1.
      command: [
        "--domain", o.domain, "--data-dir", "/data",
        "--c2s-host", "127.0.0.1", "--c2s-port", String(n.c2sPort), "--http-host", "127.0.0.1", "--http-port", String(n.httpPort),
        "--registration", o.registration, "--tls-cert", "/tls/cert.pem", "--tls-key", "/tls/key.pem",
        "--upload-url", uploadUrl(o.domain, o.httpsPort), "--upload-max-file-size", String(o.uploadMaxBytes ?? UPLOAD_MAX_BYTES),
        "--websocket-url", websocketUrl(o.domain, o.httpsPort),
        "--proxy-protocol", "true",
        ...(o.maxConnectionsPerAddress !== undefined ? ["--max-connections-per-address", String(o.maxConnectionsPerAddress)] : []),
        ...(o.directTls ? ["--c2s-direct-tls-port", String(n.c2sDirectTlsPort)] : []),
      ],
      network_mode: "host",
      user: o.user,
      init: true,
      restart: "unless-stopped",
      stop_grace_period: "30s",
      environment: { NODE_ENV: "production", PI_IM_NODE_ID: n.name, PI_IM_NODES: String(o.nodes) },
      volumes: [`${o.dataDir}:/data`, `${o.tlsDir}:/tls:ro`],
      healthcheck: {
        test: ["CMD", "bash", "-c", healthProbe(n.httpPort)],
        interval: HEALTHCHECK.interval, timeout: HEALTHCHECK.timeout, retries: HEALTHCHECK.retries, start_period: HEALTHCHECK.startPeriod,
      },
      deploy: { resources: { limits: { memory: o.nodeMemory.toUpperCase(), cpus: String(o.nodeCpus) } } },
      logging,
    };
  }
  services["nginx"] = {
    image: o.nginxImage,
    command: ["nginx", "-g", "daemon off;"],
    network_mode: "host",
    restart: "unless-stopped",
    depends_on: nodePorts(o.nodes, o.internalPortBase).map((n) => n.name),
    volumes: [`${o.nginxConfPath}:/etc/nginx/nginx.conf:ro`, `${o.tlsDir}:/tls:ro`],
    healthcheck: { test: ["CMD", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${o.httpPort}`], interval: "30s", timeout: HEALTHCHECK.timeout, retries: 3, start_period: "60s" },
    deploy: { resources: { limits: { memory: o.nginxMemory.toUpperCase() } } },
    logging,
  };
  return `# Rendered by pi-im (infra/render/compose.ts). Do not edit on the Pi: pulumi up rewrites it.\n${toYaml({ version: "3.8", services })}`;
}

/**
 * YAML for Compose, written by the `yaml` package: strings double-quoted, lists of scalars on one
 * line. Compose interpolates $VAR in values, so every literal $ in a value is written $$.
 */
export function toYaml(value: unknown): string {
  // No anchors for objects used twice (the nodes share one logging block): plain, greppable output.
  const doc = new Document(value, { aliasDuplicateObjects: false });
  visit(doc, {
    Scalar(key, node) {
      if (key !== "key" && typeof node.value === "string") node.value = node.value.replace(/\$/g, "$$$$");
    },
    Seq(_, node) {
      if (node.items.every(isScalar)) node.flow = true;
    },
  });
  return doc.toString({
    defaultStringType: "QUOTE_DOUBLE",
    defaultKeyType: "PLAIN",
    doubleQuotedAsJSON: true, // one line per value, "\n" escapes, as JSON writes them
    flowCollectionPadding: false,
    lineWidth: 0,
  });
}
