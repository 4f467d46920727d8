// pulumi-resource-command: the `command` provider that @pulumi/command's SDK talks to.
//
// Pulumi's provider is a Go program whose module the Go proxy here refuses (see README.md in this
// folder). This one implements the same resource types and properties the SDK sends, for the
// subset pi-im uses: local:Command, remote:Command and remote:CopyToRemote. Any other type is an
// error that says so, never a silent no-op. Like upstream, a command's output is streamed line by
// line into the progress display unless its `logging` input says otherwise (output-log.ts).
import * as crypto from "node:crypto";
import * as pulumiProvider from "@pulumi/pulumi/provider";
import { runLocal, type RunResult } from "./local";
import { engineAddress, engineStatusSink, LOGGING_VALUES, type Logging, outputLog, type StatusSink } from "./output-log";
import { type Connection, copyToRemote, runRemote } from "./remote";
import { asSecret, containsSecret, pick, reveal, stable } from "./wire";

const COMMAND_INPUTS = ["create", "update", "delete", "environment", "stdin", "triggers", "addPreviousOutputInEnv", "interpreter", "dir", "connection", "logging"] as const;
const COPY_INPUTS = ["connection", "source", "remotePath", "triggers"] as const;

type Kind = "local:Command" | "remote:Command" | "remote:CopyToRemote";

export function kindOf(urn: string): Kind {
  const type = urn.split("::")[2]?.split("$").pop() ?? "";
  switch (type) {
    case "command:local:Command": return "local:Command";
    case "command:remote:Command": return "remote:Command";
    case "command:remote:CopyToRemote": return "remote:CopyToRemote";
    default: throw new Error(`resource type ${type} is not supported by this command provider (supported: local:Command, remote:Command, remote:CopyToRemote)`);
  }
}

function inputKeys(kind: Kind): readonly string[] {
  return kind === "remote:CopyToRemote" ? COPY_INPUTS : COMMAND_INPUTS;
}

interface CommandInputs {
  create?: string;
  update?: string;
  delete?: string;
  environment?: Record<string, string>;
  stdin?: string;
  interpreter?: string[];
  dir?: string;
  addPreviousOutputInEnv?: boolean;
  connection?: Connection;
  /** Which output streams go to the progress display (default both), as upstream. */
  logging?: Logging;
}

/** Set by main() from the engine address the engine starts us with; none in unit tests. */
let statusSink: StatusSink | undefined;

function previousOutputEnv(inputs: CommandInputs, previous: Partial<RunResult> | undefined): Record<string, string> {
  const env = { ...inputs.environment };
  if (previous && inputs.addPreviousOutputInEnv !== false) {
    env["PULUMI_COMMAND_STDOUT"] = previous.stdout ?? "";
    env["PULUMI_COMMAND_STDERR"] = previous.stderr ?? "";
  }
  return env;
}

async function runCommand(urn: string, kind: Kind, inputs: CommandInputs, command: string, env: Record<string, string>): Promise<RunResult> {
  const log = outputLog(statusSink, urn, inputs.logging);
  if (kind === "remote:Command") {
    if (!inputs.connection?.host) throw new Error("remote:Command needs connection.host");
    return runRemote(inputs.connection, command, env, inputs.stdin, log);
  }
  return runLocal({ command, interpreter: inputs.interpreter, dir: inputs.dir, environment: env, stdin: inputs.stdin, log });
}

/**
 * Runs create (or update) and returns the outputs: the inputs as given (secrets stay wrapped) plus
 * stdout/stderr. Like upstream (pulumi-go-provider's default wiring: every output depends on every
 * input), stdout and stderr are secrets when any input is; the SDK makes remote connections secret,
 * so a remote command's output always is.
 */
async function apply(urn: string, kind: Kind, news: Record<string, unknown>, previous?: Record<string, unknown>): Promise<Record<string, unknown>> {
  const inputs = reveal<CommandInputs & { source?: unknown; remotePath?: string }>(news);
  if (kind === "remote:CopyToRemote") {
    if (!inputs.connection?.host) throw new Error("remote:CopyToRemote needs connection.host");
    if (!inputs.remotePath) throw new Error("remote:CopyToRemote needs remotePath");
    await copyToRemote(inputs.connection, news["source"], inputs.remotePath);
    return { ...news };
  }
  const output = containsSecret(news) ? asSecret : (v: string) => v;
  const command = previous ? inputs.update ?? inputs.create : inputs.create;
  if (!command) return { ...news, stdout: output(""), stderr: output("") };
  const prevOut = previous ? reveal<Partial<RunResult>>(previous) : undefined;
  const result = await runCommand(urn, kind, inputs, command, previousOutputEnv(inputs, prevOut));
  return { ...news, stdout: output(result.stdout), stderr: output(result.stderr) };
}

export const provider: pulumiProvider.Provider = {
  version: commandSdkVersion(),

  async check(urn, _olds, news) {
    const kind = kindOf(urn);
    const failures: pulumiProvider.CheckFailure[] = [];
    const inputs = reveal<Record<string, unknown>>(news);
    if (kind !== "local:Command" && !(inputs["connection"] as Connection | undefined)?.host) {
      failures.push({ property: "connection", reason: "connection.host is required" });
    }
    if (kind === "remote:CopyToRemote" && !inputs["remotePath"]) failures.push({ property: "remotePath", reason: "remotePath is required" });
    const logging = inputs["logging"];
    if (kind !== "remote:CopyToRemote" && logging !== undefined && !(LOGGING_VALUES as readonly unknown[]).includes(logging)) {
      failures.push({ property: "logging", reason: `logging must be one of ${LOGGING_VALUES.join(", ")} (got ${JSON.stringify(logging)})` });
    }
    return { inputs: news, failures };
  },

  async diff(_id, urn, olds, news) {
    const keys = inputKeys(kindOf(urn));
    const before = pick(olds, keys);
    const after = pick(news, keys);
    const changed = keys.filter((k) => stable(before[k]) !== stable(after[k]));
    // triggers exist only to force a replacement; everything else is an in-place update.
    return { changes: changed.length > 0, replaces: changed.filter((k) => k === "triggers"), deleteBeforeReplace: false };
  },

  async create(urn, inputs) {
    const outs = await apply(urn, kindOf(urn), inputs);
    return { id: crypto.randomBytes(8).toString("hex"), outs };
  },

  async update(_id, urn, olds, news) {
    return { outs: await apply(urn, kindOf(urn), news, olds) };
  },

  async delete(_id, urn, props) {
    const kind = kindOf(urn);
    if (kind === "remote:CopyToRemote") return; // like upstream: copied files stay
    const inputs = reveal<CommandInputs & Partial<RunResult>>(props);
    if (!inputs.delete) return;
    await runCommand(urn, kind, inputs, inputs.delete, previousOutputEnv(inputs, inputs));
  },
};

function commandSdkVersion(): string {
  try {
    return (require("@pulumi/command/package.json") as { version: string }).version;
  } catch {
    return "1.2.1";
  }
}

/** Where status lines go (tests set their own sink). */
export function setStatusSink(sink: StatusSink | undefined): void {
  statusSink = sink;
}

if (require.main === module) {
  const address = engineAddress(process.argv.slice(2));
  if (address) setStatusSink(engineStatusSink(address));
  pulumiProvider.main(provider, process.argv.slice(2)).catch((err: Error) => {
    console.error(`pulumi-resource-command: ${err.stack ?? err.message}`);
    process.exit(1);
  });
}
