// Capacity search on the emulated Pi (issue 6): boots a throw-away board, deploys the qemu stack
// with the real engine, runs the load runner's --search-max against it with the CI thresholds,
// and destroys everything again. Run by hand (it takes 15-40 minutes):
//   npm run capacity:qemu -- [--search-max 800] [--users 50] [--duration 60s] [any load flag]
// Extra flags go to the load runner after the defaults, so they override them.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBoard, stopBoard, type BoardState } from "../qemu-pi/board.ts";
import { type ClientRelays, relayClientPorts } from "../qemu-pi/relay.ts";
import { Project, repoRoot } from "./project.ts";

const DOMAIN = "pi-im.test";
const log = (s: string) => process.stderr.write(`==> capacity: ${s}\n`);

async function pulumi(project: Project, args: string[]): Promise<string> {
  const r = await project.pulumi(args);
  if (r.code !== 0) throw new Error(`pulumi ${args.join(" ")} failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function load(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import=tsx", join(repoRoot, "load-tests/src/cli.ts"), ...args], { cwd: repoRoot, stdio: "inherit" });
    child.on("close", (c) => resolve(c ?? 1));
  });
}

let board: BoardState | undefined;
let front: ClientRelays | undefined;
// Ctrl-C during the deploy or the search: the board is throw-away, so stop it rather than leave
// an emulator running (the load runner removes its own accounts on its first Ctrl-C).
process.on("SIGINT", () => {
  log("interrupted: stopping the board");
  void (board ? stopBoard(board) : Promise.resolve()).finally(() => process.exit(130));
});

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "pi-im-capacity-"));
  let project: Project | undefined;
  let deployed = false;
  try {
    log("building the server image from this checkout (cached by input hash)");
    execFileSync("npm", ["run", "--silent", "build", "-w", "im-server"], { cwd: repoRoot, stdio: "inherit" });
    execFileSync("bash", ["tools/images/build-im-server.sh", "--arch", "arm64"], { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] });
    board = await startBoard({ stateDir: join(dir, "board") });
    // Clients reach the board through relays: QEMU's own forwards drop bursts of connections.
    front = await relayClientPorts(board);
    log(`board up: ssh ${board.ssh}, https ${front.https}, xmpp ${front.xmpp} (relays of ${board.https}, ${board.xmpp})`);
    project = new Project("qemu", { PI_IM_SSH_KEY_FILE: board.key });
    await project.init();
    await pulumi(project, ["config", "set", "--path", "pi-im:pis[0].port", String(board.ssh)]);
    log("pulumi up (about 5 minutes)");
    deployed = true;
    await pulumi(project, ["up", "--yes", "--skip-preview"]);
    const outputs = JSON.parse(await pulumi(project, ["stack", "output", "--json", "--show-secrets"])) as Record<string, unknown>;
    writeFileSync(join(dir, "ca.pem"), String(outputs["caCertificate"]));
    const target = [
      "--host", "127.0.0.1", "--port", String(front.xmpp), "--domain", DOMAIN,
      "--ws", `wss://127.0.0.1:${front.https}/xmpp-websocket`, "--tls-ca", join(dir, "ca.pem"),
    ];
    // A fresh deploy is cold (JIT, page cache, TLS session caches): the first run measured 5x the
    // latencies of later ones of the same size. Warm up first, so steps measure the steady state.
    log("warm-up: 20 users for 30 s (not counted)");
    const warm = await load([...target, "--users", "20", "--ramp", "5s", "--duration", "30s", "--scenario", "chat:3,roster:1,groupchat:1",
      "--room-size", "10", "--think", "1s-5s", "--no-progress", "--threshold", "errors==0"]);
    if (warm === 1) throw new Error("the warm-up run could not be done (see above)");
    const summary = join(dir, "capacity.json");
    const code = await load([
      ...target, "--users", "50", "--search-max", "800", "--ramp", "30s", "--duration", "60s",
      "--scenario", "chat:3,roster:1,groupchat:1", "--room-size", "10", "--think", "1s-5s", "--message-size", "50-500", "--transport", "both",
      "--thresholds-file", join(repoRoot, "load-tests/ci/pi-50-users.thresholds"), "--no-progress",
      // Registering hundreds of accounts is TLS and PBKDF2 on the emulated CPU: a few at a time and a
      // patient timeout, so provisioning (not measured) does not abort the search.
      "--provision-concurrency", "8", "--timeout", "90s",
      "--summary-json", summary, ...process.argv.slice(2),
    ]);
    log(`search done (exit ${code}); steps and capacity in ${summary}`);
    return code;
  } finally {
    if (project && deployed) {
      log("pulumi destroy");
      const r = await project.pulumi(["destroy", "--yes", "--skip-preview"]);
      if (r.code !== 0) log(`destroy failed (the board is thrown away anyway): ${r.stderr.slice(-500)}`);
    }
    await front?.close();
    if (board) await stopBoard(board);
  }
}

main().then((code) => process.exit(code), (e: Error) => {
  process.stderr.write(`capacity search could not run: ${e.message}\n`);
  process.exit(1);
});
