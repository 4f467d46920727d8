// npm run qemu:<command> -- [args]   (or: npx tsx testing/qemu-pi/cli.ts <command> [args])
//   start [--keep-disks] [--no-wait]   boot the board from the bare image; prints the state JSON
//   wait                               wait until SSH answers (PI_IM_QEMU_BOOT_TIMEOUT_S, default 240)
//   ssh [command...]                   a shell on the board, or run a command there
//   reboot                             reboot the guest and wait for SSH again
//   stop                               power off (kills QEMU if it does not go down in 60 s)
//   status                             print the state JSON of the running board
//   relay                              relays with a real backlog in front of XMPP, direct TLS, HTTP
//                                      and HTTPS, until Ctrl-C (QEMU's forwards drop connection bursts;
//                                      point load tests at these ports)
// State dir: PI_IM_QEMU_STATE_DIR or $PI_IM_CACHE/qemu-pi/run/default (state.json, console.log).
import { spawnSync } from "node:child_process";
import {
  BoardError,
  defaultStateDir,
  readBoardState,
  rebootBoard,
  runningBoard,
  sshArgs,
  startBoard,
  stopBoard,
  waitForSsh,
} from "./board.ts";
import { relayClientPorts } from "./relay.ts";

const [command, ...rest] = process.argv.slice(2);
const secs = (ms: number) => (ms / 1000).toFixed(1);

async function main(): Promise<number> {
  switch (command) {
    case "start": {
      const t0 = Date.now();
      const wait = !rest.includes("--no-wait");
      const state = await startBoard({ keepDisks: rest.includes("--keep-disks"), wait });
      console.log(JSON.stringify(state, null, 2));
      console.error(`board ${wait ? "up, SSH answering" : "started"} after ${secs(Date.now() - t0)} s; state: ${state.stateDir}/state.json`);
      console.error(`ssh: npm run qemu:ssh   (or ssh -i ${state.key} -p ${state.ssh} ${state.user}@127.0.0.1)`);
      return 0;
    }
    case "wait": {
      const ms = await waitForSsh(runningBoard());
      console.error(`SSH answered after ${secs(ms)} s`);
      return 0;
    }
    case "ssh": {
      const state = runningBoard();
      const args = sshArgs(state);
      if (rest.length === 0 && process.stdin.isTTY) args.unshift("-t");
      const r = spawnSync("ssh", rest.length ? [...args, "--", rest.join(" ")] : args, { stdio: "inherit" });
      return r.status ?? 255;
    }
    case "reboot": {
      const ms = await rebootBoard(runningBoard());
      console.error(`rebooted; SSH answered again after ${secs(ms)} s`);
      return 0;
    }
    case "stop": {
      const state = readBoardState();
      if (!state) {
        console.error(`no board state in ${defaultStateDir}; nothing to stop`);
        return 0;
      }
      console.error(`board stopped (${await stopBoard(state)})`);
      return 0;
    }
    case "status": {
      const state = runningBoard();
      console.log(JSON.stringify(state, null, 2));
      return 0;
    }
    case "relay": {
      const state = runningBoard();
      const front = await relayClientPorts(state);
      console.log(JSON.stringify({ xmpp: front.xmpp, xmpps: front.xmpps, http: front.http, https: front.https }));
      console.error(`relays up (Ctrl-C stops them): xmpp ${front.xmpp}, direct TLS ${front.xmpps}, http ${front.http}, https ${front.https}`);
      await new Promise<void>((resolve) => process.once("SIGINT", resolve));
      console.error(`${front.redials()} connection(s) were dialled again after QEMU dropped their SYN`);
      await front.close();
      return 0;
    }
    default:
      console.error("usage: cli.ts start [--keep-disks] [--no-wait] | wait | ssh [command...] | reboot | stop | status | relay");
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof BoardError ? `error: ${err.message}` : err);
    process.exit(1);
  },
);
