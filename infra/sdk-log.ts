// @pulumi/pulumi 3.248 logs every RPC's response at debug level ("RegisterResource RPC finished:
// ...; err: null, resp: <the resource's outputs>"), secrets in plain text: the site's keys, the SSH
// key in each command's connection. The engine passes debug messages on to `pulumi up --json` and
// `pulumi up --debug`. Imported by every component (through step.ts): before a message leaves
// the program, the response is cut from it; the rest of the SDK's debug output is unchanged.
// (infra/test/secrets-engine.test.ts fails when a secret shows up in --json.)
type Debug = (msg: string, ...rest: unknown[]) => Promise<void>;
// The SDK's own module object: its runtime calls `log.debug` through it, so a replaced export is used.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sdkLog = require("@pulumi/pulumi/log") as { debug: Debug; piImRedacted?: boolean };

/** The message without the RPC response it may end with. */
export function redactRpcResponse(msg: string): string {
  const at = msg.search(/RPC finished: /);
  if (at < 0) return msg;
  const resp = msg.indexOf(", resp: ", at);
  return resp < 0 ? msg : `${msg.slice(0, resp)}, resp: (not logged: it may hold secrets)`;
}

if (!sdkLog.piImRedacted) {
  const debug = sdkLog.debug;
  sdkLog.debug = (msg, ...rest) => debug(typeof msg === "string" ? redactRpcResponse(msg) : msg, ...rest);
  sdkLog.piImRedacted = true;
}
