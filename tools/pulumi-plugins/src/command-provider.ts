// pulumi-resource-command: the `command` provider that @pulumi/command's SDK talks to.
//
// Pulumi's provider is a Go program whose module the Go proxy here refuses (see README.md in this
// folder). This one implements the same resource types and properties the SDK sends, for the
// subset pi-im uses: local:Command, remote:Command and remote:CopyToRemote. Any other type is an
// error that says so, never a silent no-op.
import * as crypto from "node:crypto";
import * as pulumiProvider from "@pulumi/pulumi/provider";
import { runLocal, type RunResult } from "./local";
import { type Connection, copyToRemote, runRemote } from "./remote";
import { pick, reveal, stable } from "./wire";

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
}

function previousOutputEnv(inputs: CommandInputs, previous: Partial<RunResult> | undefined): Record<string, string> {
  const env = { ...inputs.environment };
  if (previous && inputs.addPreviousOutputInEnv !== false) {
    env["PULUMI_COMMAND_STDOUT"] = previous.stdout ?? "";
    env["PULUMI_COMMAND_STDERR"] = previous.stderr ?? "";
  }
  return env;
}

async function runCommand(kind: Kind, inputs: CommandInputs, command: string, env: Record<string, string>): Promise<RunResult> {
  if (kind === "remote:Command") {
    if (!inputs.connection?.host) throw new Error("remote:Command needs connection.host");
    return runRemote(inputs.connection, command, env, inputs.stdin);
  }
  return runLocal({ command, interpreter: inputs.interpreter, dir: inputs.dir, environment: env, stdin: inputs.stdin });
}

/** Runs create (or update) and returns the outputs: the inputs as given (secrets stay wrapped) plus stdout/stderr. */
async function apply(kind: Kind, news: Record<string, unknown>, previous?: Record<string, unknown>): Promise<Record<string, unknown>> {
  const inputs = reveal<CommandInputs & { source?: unknown; remotePath?: string }>(news);
  if (kind === "remote:CopyToRemote") {
    if (!inputs.connection?.host) throw new Error("remote:CopyToRemote needs connection.host");
    if (!inputs.remotePath) throw new Error("remote:CopyToRemote needs remotePath");
    await copyToRemote(inputs.connection, news["source"], inputs.remotePath);
    return { ...news };
  }
  const command = previous ? inputs.update ?? inputs.create : inputs.create;
  if (!command) return { ...news, stdout: "", stderr: "" };
  const prevOut = previous ? reveal<Partial<RunResult>>(previous) : undefined;
  const result = await runCommand(kind, inputs, command, previousOutputEnv(inputs, prevOut));
  return { ...news, stdout: result.stdout, stderr: result.stderr };
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
    const outs = await apply(kindOf(urn), inputs);
    return { id: crypto.randomBytes(8).toString("hex"), outs };
  },

  async update(_id, urn, olds, news) {
    return { outs: await apply(kindOf(urn), news, olds) };
  },

  async delete(_id, urn, props) {
    const kind = kindOf(urn);
    if (kind === "remote:CopyToRemote") return; // like upstream: copied files stay
    const inputs = reveal<CommandInputs & Partial<RunResult>>(props);
    if (!inputs.delete) return;
    await runCommand(kind, inputs, inputs.delete, previousOutputEnv(inputs, inputs));
  },
};

function commandSdkVersion(): string {
  try {
    return (require("@pulumi/command/package.json") as { version: string }).version;
  } catch {
    return "1.2.1";
  }
}

if (require.main === module) {
  pulumiProvider.main(provider, process.argv.slice(2)).catch((err: Error) => {
    console.error(`pulumi-resource-command: ${err.stack ?? err.message}`);
    process.exit(1);
  });
}
