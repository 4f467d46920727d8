// The rendered nginx.conf inside the pi-im/nginx image built by tools/images (the one the Pi runs):
// the stream module path exists there, the config loads, and the compose health check works.
import test from "ava";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderNginxConf } from "../render/nginx";
import { imageSource } from "../site";

const docker = (...args: string[]) => spawnSync("docker", args, { encoding: "utf8" });

test("pi-im/nginx image runs the rendered nginx.conf and answers the compose health check", (t) => {
  if (docker("info").status !== 0) return t.fail("docker is not running: run `npm run setup` (testing/run.sh starts it)");
  const arch = process.arch === "arm64" ? "arm64" : "amd64";
  const src = imageSource("nginx", { index: "${PI_IM_CACHE:-~/.cache/pi-im}/images/{arch}/nginx.json" }, arch, process.env);
  if (!("tarball" in src)) return t.fail("expected a tarball source");
  if (docker("image", "inspect", src.name).status !== 0) {
    if (!fs.existsSync(src.tarball)) return t.fail(`image ${src.name} is neither loaded nor built (${src.tarball}): run tools/images/build.sh`);
    execFileSync("sh", ["-c", `gzip -dc '${src.tarball}' | docker load`], { stdio: "ignore" });
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-im-nginx-image-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=chat.test", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`], { stdio: "ignore" });
  fs.chmodSync(`${dir}/key.pem`, 0o644);
  fs.writeFileSync(`${dir}/nginx.conf`, renderNginxConf({
    domain: "chat.test", ports: { http: 80, https: 443, xmpp: 5222 }, tlsDir: "/tls",
    upstreams: [{ host: "127.0.0.1", httpPort: 15280, c2sPort: 15222 }, { host: "127.0.0.1", httpPort: 15281, c2sPort: 15223 }],
  }));
  const run = docker("run", "-d", "-v", `${dir}/nginx.conf:/etc/nginx/nginx.conf:ro`, "-v", `${dir}:/tls:ro`, src.name, "nginx", "-g", "daemon off;");
  t.is(run.status, 0, run.stderr);
  const id = run.stdout.trim();
  try {
    let health = docker("exec", id, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80");
    for (let i = 0; i < 50 && health.status !== 0; i++) {
      spawnSync("sleep", ["0.2"]);
      health = docker("exec", id, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80");
    }
    t.is(health.status, 0, `health check failed: ${health.stderr}\n${docker("logs", id).stderr}`);
    const check = docker("exec", id, "nginx", "-t");
    t.is(check.status, 0, check.stderr);
    t.regex(check.stderr, /syntax is ok/);
  } finally {
    docker("rm", "-f", id);
  }
});
