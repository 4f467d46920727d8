// A command's output streamed to the engine's progress display, as the upstream provider does
// (pulumi-command v1.x, provider/pkg/provider/util.LogOutput): the bytes of the streams chosen by
// the `logging` input go, in the order they arrive, into one line scanner (Go's bufio.Scanner with
// ScanLines: split at "\n", one trailing "\r" dropped, a last line without "\n" still sent), and
// each line becomes an Info *status* message for the resource: Engine.Log with ephemeral=true,
// which the display shows in the resource's row (and, non-interactively, prints). Whatever is
// logged is shown to whoever watches `pulumi up`: commands whose output holds a secret must say
// `logging: "none"` (or the stream that carries no secret).
import * as grpc from "@grpc/grpc-js";
import * as enginerpc from "@pulumi/pulumi/proto/engine_grpc_pb";
import * as engineproto from "@pulumi/pulumi/proto/engine_pb";

export const LOGGING_VALUES = ["stdout", "stderr", "stdoutAndStderr", "none"] as const;
export type Logging = (typeof LOGGING_VALUES)[number];

/** Absent means stdoutAndStderr, as upstream. */
export function shouldLogStdout(l: Logging | undefined): boolean {
  return l === undefined || l === "stdout" || l === "stdoutAndStderr";
}

export function shouldLogStderr(l: Logging | undefined): boolean {
  return l === undefined || l === "stderr" || l === "stdoutAndStderr";
}

/** bufio.MaxScanTokenSize: the longest line Go's scanner takes. */
export const MAX_LINE = 64 * 1024;

/**
 * Splits the bytes written to it into lines and sends each, in order, to `emit`. Like upstream,
 * both streams share one scanner, and a line of 64 KiB or more ends the logging of that command
 * (upstream's scanner stops there, and its pipe then blocks the command; here the command goes on).
 */
export class LineScanner {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private sending: Promise<void> = Promise.resolve();

  constructor(private readonly emit: (line: string) => Promise<void>) {}

  write(chunk: Buffer): void {
    if (this.done) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let nl: number;
    while ((nl = this.buf.indexOf(0x0a)) >= 0) {
      this.send(this.buf.subarray(0, nl));
      this.buf = this.buf.subarray(nl + 1);
    }
    if (this.buf.length >= MAX_LINE) {
      this.done = true;
      this.buf = Buffer.alloc(0);
    }
  }

  /** Sends a last line without a newline, then resolves when every line was sent. */
  end(): Promise<void> {
    if (!this.done && this.buf.length > 0) this.send(this.buf);
    this.done = true;
    this.buf = Buffer.alloc(0);
    return this.sending;
  }

  private send(line: Buffer): void {
    const text = (line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line).toString("utf8");
    // A failed log call loses the line, never the command (upstream falls back to its own log).
    this.sending = this.sending.then(() => this.emit(text).catch(() => {}));
  }
}

/** Where a provider sends status messages: the engine's Log RPC. */
export interface StatusSink {
  status(urn: string, message: string): Promise<void>;
}

/** The engine's address from a plugin's arguments, as the SDK's parseArgs reads them. */
export function engineAddress(args: string[]): string | undefined {
  const clean: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--logtostderr" || a.startsWith("-v=")) continue;
    if (a === "--tracing") { i++; continue; }
    clean.push(a);
  }
  return clean[0];
}

/** Status messages to the engine at `address`: severity Info, ephemeral, streamId 0. */
export function engineStatusSink(address: string): StatusSink {
  let client: enginerpc.EngineClient | undefined;
  return {
    status(urn, message) {
      client ??= new enginerpc.EngineClient(address, grpc.credentials.createInsecure());
      const req = new engineproto.LogRequest();
      req.setSeverity(engineproto.LogSeverity.INFO);
      req.setMessage(message);
      req.setUrn(urn);
      req.setEphemeral(true);
      return new Promise((resolve, reject) => client!.log(req, (err) => (err ? reject(err) : resolve())));
    },
  };
}

/** What a command run needs to stream its output: per-stream callbacks and a final flush. */
export interface OutputLog {
  stdout?: (chunk: Buffer) => void;
  stderr?: (chunk: Buffer) => void;
  /** Resolves once every line was sent; call after the command ended, whether it failed or not. */
  flush(): Promise<void>;
}

export function outputLog(sink: StatusSink | undefined, urn: string, logging: Logging | undefined): OutputLog {
  if (!sink) return { flush: async () => {} };
  const lines = new LineScanner((line) => sink.status(urn, line));
  const write = (chunk: Buffer) => lines.write(chunk);
  return {
    stdout: shouldLogStdout(logging) ? write : undefined,
    stderr: shouldLogStderr(logging) ? write : undefined,
    flush: () => lines.end(),
  };
}
