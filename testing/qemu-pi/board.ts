// The emulated Raspberry Pi: start, wait for SSH, run commands, reboot, stop.
// Used by cli.ts (npm run qemu:*) and importable by tests:
//   import { startBoard, sshExec, rebootBoard, stopBoard } from "../qemu-pi/board.ts";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, type RunResult } from "../lib/run.ts";

const here = dirname(fileURLToPath(import.meta.url));

/** What a running board is; written to <stateDir>/state.json. */
export interface BoardState {
  ssh: number;
  http: number;
  https: number;
  xmpp: number;
  /** XEP-0368 direct TLS (the qemu stack publishes it). */
  xmpps: number;
  /** Private half of the test key pair authorized for `user`. */
  key: string;
  user: string;
  host: string;
  pid: number;
  /** Every forward, guest port -> host port (the five above plus PI_IM_QEMU_EXTRA_PORTS). */
  forwards: Record<string, number>;
  /** The blank "USB drive": its serial and where the guest finds it. */
  usbDisk: { serial: string; byId: string; sizeGiB: number };
  stateDir: string;
  console: string;
  image: string;
  startedAt: string;
}

export interface StartOptions {
  stateDir?: string;
  /** Keep the root overlay and the USB disk of the last run instead of starting from bare. */
  keepDisks?: boolean;
  /** Wait for SSH before returning (default true). */
  wait?: boolean;
  timeoutMs?: number;
}

export class BoardError extends Error {}

const env = process.env;
export const cacheDir = env.PI_IM_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "pi-im");
export const defaultStateDir = env.PI_IM_QEMU_STATE_DIR ?? join(cacheDir, "qemu-pi", "run", "default");
const USB_SERIAL = "PIIMUSB0001";
const GUEST_PORTS = { ssh: 22, http: 80, https: 443, xmpp: 5222, xmpps: 5223 } as const;

function envInt(name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new BoardError(`${name}=${raw} is not a port/number; unset it or give an integer`);
  }
  return n;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The cached image for the current builder inputs (build-image.sh --print-dir). */
export function imageDir(): string {
  try {
    return execFileSync("bash", [join(here, "build-image.sh"), "--print-dir"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  } catch (e) {
    const msg = (e as { stderr?: string }).stderr?.trim();
    throw new BoardError(msg || "no board image; run: npm run qemu:build");
  }
}

export function consoleTail(stateDir: string, lines = 30): string {
  const file = join(stateDir, "console.log");
  if (!existsSync(file)) return "(no console log)";
  const text = readFileSync(file, "utf8").replace(/\r/g, "").split("\n");
  return text.slice(-lines).join("\n");
}

export function readBoardState(stateDir = defaultStateDir): BoardState | undefined {
  const file = join(stateDir, "state.json");
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as BoardState;
}

/** The running board in stateDir, or a clear error. */
export function runningBoard(stateDir = defaultStateDir): BoardState {
  const state = readBoardState(stateDir);
  if (!state || !isAlive(state.pid)) {
    throw new BoardError(`no board is running (state dir ${stateDir}); start one: npm run qemu:start`);
  }
  return state;
}

export async function startBoard(opts: StartOptions = {}): Promise<BoardState> {
  const stateDir = opts.stateDir ?? defaultStateDir;
  const old = readBoardState(stateDir);
  if (old && isAlive(old.pid)) {
    throw new BoardError(`a board is already running (pid ${old.pid}, ssh port ${old.ssh}); stop it: npm run qemu:stop`);
  }
  const image = imageDir();
  const meta = JSON.parse(readFileSync(join(image, "image.json"), "utf8")) as { key: string; user: string; rootLabel: string };
  mkdirSync(stateDir, { recursive: true });
  const rootDisk = join(stateDir, "root-overlay.qcow2");
  const usbDisk = join(stateDir, "usb.qcow2");
  const usbGiB = envInt("PI_IM_QEMU_USB_GIB", 2);
  if (!opts.keepDisks || !existsSync(rootDisk) || !existsSync(usbDisk)) {
    rmSync(rootDisk, { force: true });
    rmSync(usbDisk, { force: true });
    // Copy-on-write over the bare image: every run starts from a freshly flashed board.
    qemuImg(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", join(image, "root.qcow2"), rootDisk]);
    qemuImg(["create", "-q", "-f", "qcow2", usbDisk, `${usbGiB}G`]);
  }

  const forwards: Record<string, number> = {};
  const taken = new Set<number>();
  const pick = async (envName: string): Promise<number> => {
    let p = envInt(envName, 0);
    while (p === 0 || taken.has(p)) p = await freePort();
    taken.add(p);
    return p;
  };
  for (const [name, guest] of Object.entries(GUEST_PORTS)) {
    forwards[String(guest)] = await pick(`PI_IM_QEMU_${name.toUpperCase()}_PORT`);
  }
  // Extra guest ports to forward, e.g. PI_IM_QEMU_EXTRA_PORTS="8080,5269" (for firewall scans).
  for (const raw of (env.PI_IM_QEMU_EXTRA_PORTS ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const guest = Number(raw);
    if (!Number.isInteger(guest) || guest < 1 || guest > 65535) {
      throw new BoardError(`PI_IM_QEMU_EXTRA_PORTS: "${raw}" is not a port; give a comma-separated list like 8080,5269`);
    }
    if (!(String(guest) in forwards)) forwards[String(guest)] = await pick("");
  }

  const consoleLog = join(stateDir, "console.log");
  const pidFile = join(stateDir, "qemu.pid");
  rmSync(pidFile, { force: true });
  const hostfwd = Object.entries(forwards)
    .map(([guest, hostPort]) => `hostfwd=tcp:127.0.0.1:${hostPort}-:${guest}`)
    .join(",");
  const args = [
    "-M", "virt", "-cpu", "cortex-a72",
    "-smp", String(envInt("PI_IM_QEMU_CPUS", 2)),
    "-m", String(envInt("PI_IM_QEMU_MEM_MB", 2048)),
    "-kernel", join(image, "vmlinuz"),
    "-initrd", join(image, "initrd.img"),
    "-append", `root=LABEL=${meta.rootLabel} rootfstype=ext4 rw console=ttyAMA0 net.ifnames=0`,
    // Root disk: the overlay is thrown away after the run, so flushes need not reach the host disk.
    "-drive", `if=none,id=root,file=${rootDisk},format=qcow2,cache=unsafe,discard=unmap`,
    "-device", "virtio-blk-pci,drive=root",
    // The "USB drive": a real USB mass-storage device, /dev/sda in the guest, stable serial.
    "-device", "qemu-xhci,id=xhci",
    "-drive", `if=none,id=usb0,file=${usbDisk},format=qcow2`,
    "-device", `usb-storage,bus=xhci.0,drive=usb0,serial=${USB_SERIAL}`,
    "-netdev", `user,id=net0,${hostfwd}`,
    "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:31:41:59,romfile=",
    "-object", "rng-random,filename=/dev/urandom,id=rng0",
    "-device", "virtio-rng-pci,rng=rng0",
    "-display", "none",
    "-serial", `file:${consoleLog}`,
    "-monitor", "none",
    "-pidfile", pidFile,
    "-daemonize",
  ];
  await new Promise<void>((resolve, reject) => {
    execFile("qemu-system-aarch64", args, (err, _stdout, stderr) => {
      if (err) reject(new BoardError(`qemu-system-aarch64 failed to start: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const state: BoardState = {
    ssh: forwards["22"]!,
    http: forwards["80"]!,
    https: forwards["443"]!,
    xmpp: forwards["5222"]!,
    xmpps: forwards["5223"]!,
    key: meta.key,
    user: meta.user,
    host: "127.0.0.1",
    pid,
    forwards,
    usbDisk: { serial: USB_SERIAL, byId: `/dev/disk/by-id/usb-QEMU_QEMU_HARDDISK_${USB_SERIAL}-0:0`, sizeGiB: usbGiB },
    stateDir,
    console: consoleLog,
    image,
    startedAt: new Date().toISOString(),
  };
  writeFileSync(join(stateDir, "state.json"), JSON.stringify(state, null, 2) + "\n");
  if (opts.wait !== false) {
    try {
      await waitForSsh(state, opts.timeoutMs);
    } catch (e) {
      // A board that did not boot is of no use: do not leave QEMU behind (the console log stays).
      await killBoard(state);
      throw e;
    }
  }
  return state;
}

function qemuImg(args: string[]): void {
  try {
    execFileSync("qemu-img", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    throw new BoardError(`qemu-img ${args.join(" ")} failed: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  }
}

export function sshArgs(state: BoardState, connectTimeoutS = 10): string[] {
  return [
    "-i", state.key,
    "-p", String(state.ssh),
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", `ConnectTimeout=${connectTimeoutS}`,
    "-o", "ServerAliveInterval=15",
    `${state.user}@${state.host}`,
  ];
}

/** Runs a shell command line on the board over SSH. Never throws for a non-zero exit; 255 when ssh
 * itself failed or was killed by the timeout. */
export async function sshExec(state: BoardState, command: string, opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const r = await run("ssh", [...sshArgs(state), "--", command], opts);
  return r.signal ? { ...r, code: 255 } : r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `true` succeeds over SSH; on timeout or a dead QEMU, throws with the console's tail. */
export async function waitForSsh(state: BoardState, timeoutMs = envInt("PI_IM_QEMU_BOOT_TIMEOUT_S", 240) * 1000): Promise<number> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    if (!isAlive(state.pid)) {
      throw new BoardError(`QEMU (pid ${state.pid}) exited while waiting for SSH. Console tail (${state.console}):\n${consoleTail(state.stateDir)}`);
    }
    if (/Kernel panic - not syncing|initramfs: dropping to a shell/.test(consoleTail(state.stateDir, 60))) {
      throw new BoardError(`the board failed to boot. Console tail (${state.console}):\n${consoleTail(state.stateDir)}`);
    }
    const r = await sshExec(state, "true", { timeoutMs: 15_000 });
    if (r.code === 0) return Date.now() - t0;
    last = r.stderr.trim();
    await sleep(1000);
  }
  throw new BoardError(
    `SSH on 127.0.0.1:${state.ssh} did not answer within ${Math.round(timeoutMs / 1000)} s (last error: ${last || "none"}).\n` +
      `Console tail (${state.console}):\n${consoleTail(state.stateDir)}`,
  );
}

async function bootId(state: BoardState): Promise<string> {
  const r = await sshExec(state, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 30_000 });
  if (r.code !== 0) throw new BoardError(`could not read the boot id over SSH: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Reboots the guest (same QEMU process, same disks) and waits until it answers SSH with a new boot. */
export async function rebootBoard(state: BoardState, timeoutMs?: number): Promise<number> {
  const before = await bootId(state);
  const t0 = Date.now();
  await sshExec(state, "sudo systemctl reboot", { timeoutMs: 30_000 });
  const deadline = t0 + (timeoutMs ?? envInt("PI_IM_QEMU_BOOT_TIMEOUT_S", 240) * 1000);
  for (;;) {
    await sleep(2000);
    await waitForSsh(state, Math.max(1000, deadline - Date.now()));
    const r = await sshExec(state, "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 15_000 });
    if (r.code === 0 && r.stdout.trim() !== before) return Date.now() - t0;
    if (Date.now() > deadline) throw new BoardError(`the board did not reboot within the timeout.\n${consoleTail(state.stateDir)}`);
  }
}

/** Ends QEMU at once (SIGTERM, then SIGKILL) and forgets the state; the console log stays. */
export async function killBoard(state: BoardState): Promise<void> {
  if (isAlive(state.pid)) process.kill(state.pid, "SIGTERM");
  for (let i = 0; i < 20 && isAlive(state.pid); i++) await sleep(250);
  if (isAlive(state.pid)) process.kill(state.pid, "SIGKILL");
  rmSync(join(state.stateDir, "state.json"), { force: true });
}

/** Powers the guest off over SSH; kills QEMU if it has not exited within graceMs. */
export async function stopBoard(state: BoardState, graceMs = 60_000): Promise<"poweroff" | "killed" | "not-running"> {
  if (!isAlive(state.pid)) {
    rmSync(join(state.stateDir, "state.json"), { force: true });
    return "not-running";
  }
  await sshExec(state, "sudo systemctl poweroff", { timeoutMs: 20_000 });
  const t0 = Date.now();
  let how: "poweroff" | "killed" = "poweroff";
  while (isAlive(state.pid) && Date.now() - t0 < graceMs) await sleep(500);
  if (isAlive(state.pid)) how = "killed";
  await killBoard(state);
  return how;
}
