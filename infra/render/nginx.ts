// nginx.conf for the front of the IM cluster: HTTPS + WebSocket on 443, redirect on 80 (health
// stays reachable), XMPP c2s as a TCP stream passthrough (STARTTLS stays end to end), and
// optionally XEP-0368 direct TLS passed through the same way. The passthroughs speak the PROXY
// protocol to the nodes (which run with --proxy-protocol true); HTTP carries X-Real-IP.
// nginx runs with the host's network so ufw governs its ports; nodes listen on loopback ports.

export interface NginxUpstream {
  host: string;
  httpPort: number;
  c2sPort: number;
  c2sDirectTlsPort?: number;
}

export interface NginxOptions {
  domain: string;
  /** xmppDirectTls: XEP-0368 direct TLS, passed through to the nodes (off when absent). */
  ports: { http: number; https: number; xmpp: number; xmppDirectTls?: number };
  upstreams: NginxUpstream[];
  /** Directory holding cert.pem (full chain) and key.pem, as seen by nginx. */
  tlsDir: string;
  /** Where the stream module lives (Debian and the pi-im/nginx image agree). */
  streamModule?: string;
  pidFile?: string;
  user?: string;
  /** Largest upload nginx accepts (the IM server enforces its own limit too). */
  maxBodySize?: string;
  /** Also listen on IPv6 (default true; turn off where the kernel has no IPv6). */
  ipv6?: boolean;
}

export function renderNginxConf(o: NginxOptions): string {
  if (o.upstreams.length === 0) throw new Error("renderNginxConf: at least one upstream node is needed");
  const http = o.upstreams.map((u) => `    server ${u.host}:${u.httpPort} max_fails=3 fail_timeout=10s;`).join("\n");
  const v6 = (listen: string) => (o.ipv6 === false ? "" : `\n    listen [::]:${listen};`);
  const tlsPort = o.ports.xmppDirectTls;
  if (tlsPort !== undefined && o.upstreams.some((u) => u.c2sDirectTlsPort === undefined)) throw new Error("renderNginxConf: ports.xmppDirectTls needs every upstream's c2sDirectTlsPort");
  // A TCP passthrough from a public port to every node's port of that kind (least connections).
  const passthrough = (name: string, port: number, nodePort: (u: NginxUpstream) => number | undefined) => `
  upstream ${name} {
    least_conn;
${o.upstreams.map((u) => `    server ${u.host}:${nodePort(u)} max_fails=3 fail_timeout=10s;`).join("\n")}
  }

  server {
    listen ${port};${v6(`${port}`)}
    proxy_pass ${name};
    # The node sees 127.0.0.1 as the peer: a PROXY protocol header (v1) tells it the client's address.
    proxy_protocol on;
    proxy_connect_timeout 5s;
    proxy_timeout 1h;
  }
`;
  // nginx is the site's edge: the client address headers name the peer nginx saw, and replace (never
  // append to) whatever a client sent under those names, so no client can choose the address the
  // nodes' per-address limits see.
  const proxyHeaders = `      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Forwarded "";`;
  return `# Rendered by pi-im (infra/render/nginx.ts). Do not edit on the Pi: pulumi up rewrites it.
load_module ${o.streamModule ?? "/usr/lib/nginx/modules/ngx_stream_module.so"};
user ${o.user ?? "www-data"};
worker_processes auto;
pid ${o.pidFile ?? "/run/nginx.pid"};
error_log stderr warn;

events {
  worker_connections 4096;
}

http {
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  client_max_body_size ${o.maxBodySize ?? "100m"};
  default_type application/octet-stream;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }

  upstream im_http {
    least_conn;
${http}
    keepalive 16;
  }

  server {
    listen ${o.ports.http} default_server;${v6(`${o.ports.http} default_server`)}
    server_name ${o.domain} _;

    # Health stays on plain HTTP so monitoring on the LAN need not trust the site CA.
    location = /health {
      proxy_pass http://im_http/health;
${proxyHeaders}
    }

    location / {
      return 301 https://$host${o.ports.https === 443 ? "" : `:${o.ports.https}`}$request_uri;
    }
  }

  server {
    listen ${o.ports.https} ssl http2 default_server;${v6(`${o.ports.https} ssl http2 default_server`)}
    server_name ${o.domain} _;

    ssl_certificate ${o.tlsDir}/cert.pem;
    ssl_certificate_key ${o.tlsDir}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1d;
    add_header Strict-Transport-Security "max-age=31536000" always;

    # XMPP over WebSocket (RFC 7395): long-lived upgraded connections.
    location = /xmpp-websocket {
      proxy_pass http://im_http;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
${proxyHeaders}
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_buffering off;
    }

    location / {
      proxy_pass http://im_http;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
${proxyHeaders}
      proxy_request_buffering off;
    }
  }
}

stream {
  # XMPP c2s: a plain TCP passthrough, so STARTTLS is negotiated with the IM node end to end.${passthrough("im_c2s", o.ports.xmpp, (u) => u.c2sPort)}${
  // Direct TLS (XEP-0368) passes through the same way: the node holds the certificate and does the handshake.
  tlsPort === undefined ? "" : passthrough("im_c2s_tls", tlsPort, (u) => u.c2sDirectTlsPort)}}
`;
}
