// Scripts that run the IM cluster on a Pi: a compose wrapper that works with Compose v2
// (`docker compose`) or Debian's docker-compose 1.29, the admin command (accounts, invites), image
// loading (shipped tarball or registry pull), the deploy (files + `up -d` + wait until healthy)
// and its undo, and TLS file install.
import { PRELUDE, q, writeFile } from "./shell";

export const CLUSTER_DIR = "/etc/pi-im/cluster";
export const TLS_DIR = "/etc/pi-im/tls";
export const COMPOSE_WRAPPER = "/usr/local/sbin/pi-im-compose";
export const ADMIN_COMMAND = "/usr/local/sbin/pi-im-admin";
export const PROJECT = "pi-im";

export function renderComposeWrapper(dir = CLUSTER_DIR, project = PROJECT): string {
  return `#!/bin/bash
# pi-im-compose: docker compose for the pi-im project, whichever Compose this Pi has.
# Rendered by pi-im (infra/render/cluster.ts). Usage: pi-im-compose ps|logs|up -d|down ...
set -euo pipefail
cd ${q(dir)}
if docker compose version >/dev/null 2>&1; then
  exec docker compose -p ${q(project)} -f docker-compose.yml "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  # --compatibility turns deploy.resources.limits into real container limits on 1.29.
  exec docker-compose --compatibility -p ${q(project)} -f docker-compose.yml "$@"
fi
echo "pi-im-compose: neither 'docker compose' nor 'docker-compose' is installed" >&2
exit 127
`;
}

/** pi-im-admin on the Pi: the server's admin command (im-server/src/admin.ts) run in a node
 * container on the site's database, e.g. `sudo pi-im-admin invite --uses 20`. */
export function renderAdminCommand(domain: string, service: string): string {
  return `#!/bin/bash
# pi-im-admin: accounts and invites of ${domain}. Rendered by pi-im (infra/render/cluster.ts).
#   sudo pi-im-admin invite [--ttl-hours 168] [--uses N | --unlimited]   a token and its xmpp: link
#   sudo pi-im-admin invites | revoke-invite TOKEN
#   sudo pi-im-admin users | deluser NAME
#   sudo pi-im-admin adduser NAME --password-stdin   (or passwd NAME --password-stdin)
set -euo pipefail
exec ${COMPOSE_WRAPPER} exec -T ${q(service)} node /app/dist/admin.js --data-dir /data --domain ${q(domain)} "$@"
`;
}

/** Load a shipped `docker save | gzip` tarball, then delete it (the image is what matters). */
export function renderImageLoad(tarball: string, image: string): string {
  return `${PRELUDE}
[ -f ${q(tarball)} ] || die "image tarball ${tarball} was not copied"
log "loading ${image} from ${tarball}"
gzip -dc ${q(tarball)} | docker load
docker image inspect ${q(image)} >/dev/null || die "${tarball} did not contain ${image}"
rm -f ${q(tarball)}
`;
}

export function renderImagePull(ref: string): string {
  return `${PRELUDE}
log "pulling ${ref}"
docker pull ${q(ref)}
`;
}

export function renderImageRemove(image: string): string {
  return `${PRELUDE}
if docker image inspect ${q(image)} >/dev/null 2>&1; then docker image rm ${q(image)} >/dev/null || log "image ${image} still in use; left"; fi
`;
}

export interface ClusterDeployOptions {
  compose: string;
  /** The site's XMPP domain and the node the admin command runs in. */
  domain: string;
  adminService: string;
  nginxConf: string;
  services: string[];
  /** Seconds to wait for every container to report healthy. */
  healthTimeout: number;
}

export function renderClusterDeploy(o: ClusterDeployOptions): string {
  return `#!/bin/bash
# pi-im cluster deploy, rendered by infra/render/cluster.ts.
${PRELUDE}
${writeFile(COMPOSE_WRAPPER, renderComposeWrapper(), "0755")}
${writeFile(ADMIN_COMMAND, renderAdminCommand(o.domain, o.adminService), "0755")}
${writeFile(`${CLUSTER_DIR}/docker-compose.yml`, o.compose)}
${writeFile(`${CLUSTER_DIR}/nginx.conf`, o.nginxConf)}
${COMPOSE_WRAPPER} config -q
${COMPOSE_WRAPPER} up -d --remove-orphans
# nginx reads its config at start; a changed nginx.conf with an unchanged container needs a reload.
${COMPOSE_WRAPPER} exec -T nginx nginx -s reload >/dev/null 2>&1 || true
# Wait for every container's health check. A slow board (emulated, busy) may take minutes: say so
# every minute; on timeout, show the service's log and its health checks' own output.
health_log() {
  docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{.Start}} exit {{.ExitCode}}: {{.Output}}{{println}}{{end}}{{else}}no health check; state {{.State.Status}}{{println}}{{end}}' "$1" 2>&1 || true
}
deadline=$((SECONDS + ${o.healthTimeout}))
for svc in ${o.services.map(q).join(" ")}; do
  said=$SECONDS
  while :; do
    id=$(${COMPOSE_WRAPPER} ps -q "$svc")
    state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
    case "$state" in healthy|running) log "$svc: $state"; break ;; esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      ${COMPOSE_WRAPPER} logs --tail 30 "$svc" >&2 || true
      if [ -n "$id" ]; then
        log "$svc health checks (docker inspect $id, oldest first):"
        health_log "$id" >&2
      fi
      die "$svc is $state after ${o.healthTimeout}s (its log and health checks above; on the Pi: sudo pi-im-compose logs $svc; sudo docker inspect $id)"
    fi
    if [ $((SECONDS - said)) -ge 60 ]; then
      log "$svc: still $state after $((SECONDS - deadline + ${o.healthTimeout}))s; last check: $(health_log "$id" | tail -n 2 | tr '\n' ' ')"
      said=$SECONDS
    fi
    sleep 3
  done
done
log "cluster up: ${o.services.join(", ")}"
`;
}

export function renderClusterUndo(): string {
  return `${PRELUDE}
if [ -x ${COMPOSE_WRAPPER} ] && [ -f ${CLUSTER_DIR}/docker-compose.yml ]; then
  ${COMPOSE_WRAPPER} down --remove-orphans --timeout 30
fi
rm -f ${CLUSTER_DIR}/docker-compose.yml ${CLUSTER_DIR}/nginx.conf ${COMPOSE_WRAPPER} ${ADMIN_COMMAND}
rmdir ${CLUSTER_DIR} 2>/dev/null || true
log "cluster removed (the data on /mnt/storage is kept)"
`;
}

/** Install cert.pem (chain), key.pem and ca.pem where nginx and the nodes read them. */
export function renderTlsInstall(o: { cert: string; key: string; ca?: string; group: string }): string {
  return `${PRELUDE}
install -d -m 0755 ${TLS_DIR}
${writeFile(`${TLS_DIR}/cert.pem`, o.cert, "0644")}
${writeFile(`${TLS_DIR}/key.pem`, o.key, "0640", `root:${o.group}`)}
${o.ca ? writeFile(`${TLS_DIR}/ca.pem`, o.ca, "0644") : `rm -f ${TLS_DIR}/ca.pem`}
`;
}

export function renderTlsUndo(): string {
  return `${PRELUDE}
rm -f ${TLS_DIR}/cert.pem ${TLS_DIR}/key.pem ${TLS_DIR}/ca.pem
rmdir ${TLS_DIR} 2>/dev/null || true
`;
}
