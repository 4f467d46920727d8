// pulumi-language-nodejs: the engine's Node.js language host.
//
// Pulumi's own host is a Go program whose module the Go proxy here refuses (see README.md in this
// folder), so this one speaks the same gRPC protocol (pulumirpc.LanguageRuntime) and hands the
// real work to the SDK's own program runner, `@pulumi/pulumi/cmd/run`, exactly as the Go host
// does: same flags, same environment, same exit-code contract.
import { spawn } from "node:child_process";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as emptyproto from "google-protobuf/google/protobuf/empty_pb";
import * as langrpc from "@pulumi/pulumi/proto/language_grpc_pb";
import * as langproto from "@pulumi/pulumi/proto/language_pb";
import * as pluginproto from "@pulumi/pulumi/proto/plugin_pb";
import { sdkVersion, startPluginServer } from "./plugin-server";

/** Exit code cmd/run uses when it already told the user what went wrong. */
const EXIT_ALREADY_REPORTED = 32;

type Callback<T> = grpc.sendUnaryData<T>;
type Call<T> = grpc.ServerUnaryCall<T, unknown>;

interface RuntimeOptions {
  typescript: boolean;
  tsconfig?: string;
  nodeargs?: string;
  transpileOnly?: boolean;
}

function runtimeOptions(info: langproto.ProgramInfo | undefined): RuntimeOptions {
  const raw = (info?.getOptions()?.toJavaScript() ?? {}) as Record<string, unknown>;
  return {
    typescript: raw["typescript"] !== false,
    tsconfig: typeof raw["tsconfig"] === "string" ? raw["tsconfig"] : undefined,
    nodeargs: typeof raw["nodeargs"] === "string" ? raw["nodeargs"] : undefined,
    transpileOnly: typeof raw["transpileOnly"] === "boolean" ? raw["transpileOnly"] : undefined,
  };
}

/** Finds cmd/run in the program's own node_modules, as the Go host does, so SDK versions match. */
function resolveRunner(programDir: string): string {
  return require.resolve("@pulumi/pulumi/cmd/run", { paths: [programDir, __dirname] });
}

export function runArgs(req: langproto.RunRequest, engineAddress: string): { argv: string[]; env: NodeJS.ProcessEnv } {
  const info = req.getInfo();
  const programDir = info?.getProgramDirectory() || req.getPwd();
  const entry = info?.getEntryPoint() || req.getProgram() || ".";
  const options = runtimeOptions(info);
  const flags = [
    `--monitor=${req.getMonitorAddress()}`,
    `--engine=${engineAddress}`,
    `--project=${req.getProject()}`,
    `--stack=${req.getStack()}`,
    `--pwd=${req.getPwd()}`,
    `--organization=${req.getOrganization()}`,
  ];
  if (info?.getRootDirectory()) flags.push(`--root-directory=${info.getRootDirectory()}`);
  if (req.getParallel() > 0) flags.push(`--parallel=${req.getParallel()}`);
  if (req.getDryrun()) flags.push("--dry-run");
  const nodeArgs = options.nodeargs ? options.nodeargs.split(/\s+/).filter(Boolean) : [];
  const argv = [...nodeArgs, resolveRunner(programDir), ...flags, path.resolve(programDir, entry), ...req.getArgsList()];

  const config: Record<string, string> = {};
  req.getConfigMap().forEach((value, key) => { config[key] = value; });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PULUMI_CONFIG: JSON.stringify(config),
    PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(req.getConfigsecretkeysList()),
    PULUMI_NODEJS_TYPESCRIPT: String(options.typescript),
  };
  if (options.tsconfig) env["PULUMI_NODEJS_TSCONFIG_PATH"] = options.tsconfig;
  if (options.transpileOnly !== undefined) env["PULUMI_NODEJS_TRANSPILE_ONLY"] = String(options.transpileOnly);
  return { argv, env };
}

class LanguageHost {
  constructor(private engineAddress: string) {}

  handshake(call: Call<langproto.LanguageHandshakeRequest>, cb: Callback<langproto.LanguageHandshakeResponse>): void {
    this.engineAddress = call.request.getEngineAddress() || this.engineAddress;
    cb(null, new langproto.LanguageHandshakeResponse());
  }

  getPluginInfo(_call: Call<emptyproto.Empty>, cb: Callback<pluginproto.PluginInfo>): void {
    const info = new pluginproto.PluginInfo();
    info.setVersion(sdkVersion());
    cb(null, info);
  }

  // Providers are found on $PATH (ambient plugins), so the engine never downloads one.
  getRequiredPlugins(_call: Call<unknown>, cb: Callback<langproto.GetRequiredPluginsResponse>): void {
    cb(null, new langproto.GetRequiredPluginsResponse());
  }

  getRequiredPackages(_call: Call<unknown>, cb: Callback<langproto.GetRequiredPackagesResponse>): void {
    cb(null, new langproto.GetRequiredPackagesResponse());
  }

  getProgramDependencies(_call: Call<unknown>, cb: Callback<langproto.GetProgramDependenciesResponse>): void {
    cb(null, new langproto.GetProgramDependenciesResponse());
  }

  runtimeOptionsPrompts(_call: Call<unknown>, cb: Callback<langproto.RuntimeOptionsResponse>): void {
    cb(null, new langproto.RuntimeOptionsResponse());
  }

  about(_call: Call<unknown>, cb: Callback<langproto.AboutResponse>): void {
    const resp = new langproto.AboutResponse();
    resp.setExecutable(process.execPath);
    resp.setVersion(process.version);
    cb(null, resp);
  }

  // Dependencies are installed by `npm ci` in the project's set-up, never by the engine.
  installDependencies(call: grpc.ServerWritableStream<langproto.InstallDependenciesRequest, unknown>): void {
    call.end();
  }

  cancel(_call: Call<unknown>, cb: Callback<emptyproto.Empty>): void {
    cb(null, new emptyproto.Empty());
  }

  run(call: Call<langproto.RunRequest>, cb: Callback<langproto.RunResponse>): void {
    const { argv, env } = runArgs(call.request, this.engineAddress);
    // The program's output goes to our stdout/stderr, which the engine shows to the user.
    const child = spawn(process.execPath, argv, { cwd: call.request.getPwd() || undefined, env, stdio: ["ignore", "inherit", "inherit"] });
    const resp = new langproto.RunResponse();
    child.on("error", (err) => {
      resp.setError(`could not start node: ${err.message}`);
      cb(null, resp);
    });
    child.on("exit", (code, signal) => {
      if (code === EXIT_ALREADY_REPORTED) {
        resp.setBail(true);
      } else if (code !== 0) {
        resp.setError(signal ? `program was killed by ${signal}` : `program exited with non-zero exit code: ${code}`);
      }
      cb(null, resp);
    });
  }
}

async function main(args: string[]): Promise<void> {
  const engineAddress = args.filter((a) => !a.startsWith("-")).pop() ?? "";
  const host = new LanguageHost(engineAddress);
  const impl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.getOwnPropertyNames(LanguageHost.prototype)) {
    if (name === "constructor") continue;
    impl[name] = (host as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!.bind(host);
  }
  await startPluginServer(langrpc.LanguageRuntimeService as unknown as grpc.ServiceDefinition, impl);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: Error) => {
    console.error(`pulumi-language-nodejs: ${err.stack ?? err.message}`);
    process.exit(1);
  });
}
