// The provider streams command output to the engine as upstream pulumi-command v1.x does: one Info
// status message (Engine.Log, ephemeral) per line, for the streams the `logging` input names.
// Here the engine is a recording sink; engine.test.ts and infra's secrets test use the real one.
import test from "ava";
import { promises as fs } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as enginerpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engineproto from "@pulumi/pulumi/proto/engine_pb";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import { provider, setStatusSink } from "../src/command-provider";
import { engineAddress, engineStatusSink, LineScanner, MAX_LINE, type StatusSink } from "../src/output-log";
import { containsSecret, reveal, SECRET_SIG, SIG_KEY } from "../src/wire";
import { startSshd, type Sshd } from "./helpers";

const LOCAL_URN = "urn:pulumi:dev::p::command:local:Command::c";
const REMOTE_URN = "urn:pulumi:dev::p::command:remote:Command::r";

function recorder(): StatusSink & { lines: Array<{ urn: string; message: string }> } {
  const lines: Array<{ urn: string; message: string }> = [];
  return { lines, async status(urn, message) { lines.push({ urn, message }); } };
}

let sshd: Sshd;
test.before(async () => {
  sshd = await startSshd(await fs.mkdtemp(path.join(os.tmpdir(), "pi-im-outlog-")));
});
test.after.always(async () => {
  setStatusSink(undefined);
  await sshd?.stop();
});

test("the line scanner splits like Go's bufio.ScanLines, across chunks, and keeps order", async (t) => {
  const got: string[] = [];
  const s = new LineScanner(async (l) => { await new Promise((r) => setTimeout(r, Math.random() * 3)); got.push(l); });
  s.write(Buffer.from("one\r\ntw"));
  s.write(Buffer.from("o\n\nthree"));
  s.write(Buffer.from(" and more"));
  await s.end();
  t.deepEqual(got, ["one", "two", "", "three and more"]);
});

test("a line of 64 KiB or more ends the logging of that command, as upstream's scanner gives up", async (t) => {
  const got: string[] = [];
  const s = new LineScanner(async (l) => { got.push(l); });
  s.write(Buffer.from("before\n"));
  s.write(Buffer.alloc(MAX_LINE, "x"));
  s.write(Buffer.from("\nafter\n"));
  await s.end();
  t.deepEqual(got, ["before"]);
});

test("the engine address is the first argument that is not a logging flag", (t) => {
  t.is(engineAddress(["--logtostderr", "-v=9", "--tracing", "file:/x", "127.0.0.1:4242"]), "127.0.0.1:4242");
  t.is(engineAddress([]), undefined);
});

for (const kind of ["local", "remote"] as const) {
  for (const [logging, out, err] of [
    [undefined, true, true],
    ["stdoutAndStderr", true, true],
    ["stdout", true, false],
    ["stderr", false, true],
    ["none", false, false],
  ] as const) {
    test.serial(`${kind}:Command with logging ${logging ?? "(absent)"}: stdout ${out ? "shown" : "hidden"}, stderr ${err ? "shown" : "hidden"}`, async (t) => {
      const sink = recorder();
      setStatusSink(sink);
      const urn = kind === "local" ? LOCAL_URN : REMOTE_URN;
      // Both streams share one scanner (as upstream): the pause keeps the last, unterminated line apart from stderr's.
      const inputs: Record<string, unknown> = { create: "echo foo; echo bar >&2; sleep 0.3; printf 'last-no-newline'" };
      if (logging) inputs["logging"] = logging;
      if (kind === "remote") {
        inputs["connection"] = { host: "127.0.0.1", port: sshd.port, user: sshd.user, privateKey: { [SIG_KEY]: SECRET_SIG, value: sshd.privateKey } };
      }
      const { outs } = await provider.create!(urn, inputs);
      t.is(reveal(outs["stdout"]), "foo\nlast-no-newline", "outputs do not depend on logging");
      t.is(reveal(outs["stderr"]), "bar");
      t.is(containsSecret(outs["stdout"]), kind === "remote", "outputs are secret when an input is (the connection's key)");
      const messages = sink.lines.map((l) => l.message);
      t.is(messages.includes("foo"), out, messages.join("|"));
      t.is(messages.includes("last-no-newline"), out, messages.join("|"));
      t.is(messages.includes("bar"), err, messages.join("|"));
      t.true(sink.lines.every((l) => l.urn === urn), "every line names its resource");
      t.is(sink.lines.length, (out ? 2 : 0) + (err ? 1 : 0), "nothing else is logged");
    });
  }
}

test.serial("delete streams too, and a failing command's lines arrive before its error", async (t) => {
  const sink = recorder();
  setStatusSink(sink);
  await provider.delete!("id", LOCAL_URN, { delete: "echo removing; echo gone >&2", logging: "stderr" });
  t.deepEqual(sink.lines.map((l) => l.message), ["gone"]);
  sink.lines.length = 0;
  await t.throwsAsync(provider.create!(LOCAL_URN, { create: "echo step-1; echo step-2; exit 3" }), { message: /exited with status 3/ });
  t.deepEqual(sink.lines.map((l) => l.message), ["step-1", "step-2"]);
});

test("check rejects a logging value upstream does not know", async (t) => {
  const r = await provider.check!(LOCAL_URN, {}, { create: "true", logging: "quiet" });
  t.is(r.failures?.[0]?.property, "logging");
  t.regex(r.failures?.[0]?.reason ?? "", /stdout, stderr, stdoutAndStderr, none/);
  t.deepEqual((await provider.check!(LOCAL_URN, {}, { create: "true", logging: "none" })).failures, []);
});

test("status lines reach an Engine gRPC server as Log requests: Info, ephemeral, with the URN", async (t) => {
  const got: Array<{ severity: number; message: string; urn: string; ephemeral: boolean }> = [];
  const server = new grpc.Server();
  server.addService(enginerpc.EngineService as unknown as grpc.ServiceDefinition, {
    log(call: grpc.ServerUnaryCall<engineproto.LogRequest, emptyproto.Empty>, cb: grpc.sendUnaryData<emptyproto.Empty>) {
      const r = call.request;
      got.push({ severity: r.getSeverity(), message: r.getMessage(), urn: r.getUrn(), ephemeral: r.getEphemeral() });
      cb(null, new emptyproto.Empty());
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  try {
    await engineStatusSink(`127.0.0.1:${port}`).status(LOCAL_URN, "hello from a command");
    t.deepEqual(got, [{ severity: engineproto.LogSeverity.INFO, message: "hello from a command", urn: LOCAL_URN, ephemeral: true }]);
  } finally {
    server.forceShutdown();
  }
});
