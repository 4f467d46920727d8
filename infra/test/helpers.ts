// Test helpers: stack files as raw config, and Pulumi mocks that record the resource graph
// (type, name, parent, dependencies, inputs as sent to the engine, with secrets still marked).
import * as fs from "node:fs";
import { execFileSync } from "node:child_process";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";

export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** A stack file's `config:` as parseConfig wants it (namespace stripped). */
export function loadStackFile(file: string): Record<string, unknown> {
  const doc = parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> };
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc.config ?? {})) raw[k.replace(/^pi-im:/, "")] = v;
  return raw;
}

export interface Recorded {
  type: string;
  name: string;
  urn: string;
  parent: string;
  custom: boolean;
  dependencies: string[];
  /** Inputs as serialized for the engine: secrets appear as {4dabf18193072939515e22adb298388d: SECRET_SIG, value}. */
  raw: Record<string, any>;
  outputs?: Record<string, any>;
}

const recorded: Recorded[] = [];
const byUrn = new Map<string, Recorded>();

export const FAKE_CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nCAKEY\n-----END PRIVATE KEY-----\n";
export const FAKE_LEAF = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nLEAFKEY\n-----END PRIVATE KEY-----\n";

export function installMocks(): Recorded[] {
  const mocks = require("@pulumi/pulumi/runtime/mocks");
  const proto = mocks.MockMonitor.prototype;
  if (!proto.__recording) {
    proto.__recording = true;
    const register = proto.registerResource;
    proto.registerResource = function (req: any, cb: any) {
      const urn = `urn:pulumi:test::pi-im::${req.getType()}::${req.getName()}`;
      const rec: Recorded = {
        type: req.getType(),
        name: req.getName(),
        urn,
        parent: req.getParent(),
        custom: req.getCustom(),
        dependencies: req.getDependenciesList(),
        raw: req.getObject()?.toJavaScript() ?? {},
      };
      recorded.push(rec);
      return register.call(this, req, (err: any, res: any) => {
        if (res) byUrn.set(res.getUrn(), rec), (rec.urn = res.getUrn());
        cb(err, res);
      });
    };
    const outputs = proto.registerResourceOutputs;
    proto.registerResourceOutputs = function (req: any, cb: any) {
      const rec = byUrn.get(req.getUrn());
      if (rec) rec.outputs = req.getOutputs()?.toJavaScript();
      return outputs.call(this, req, cb);
    };
  }
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        const state: Record<string, any> = { ...args.inputs };
        if (args.type === "command:local:Command") state["stdout"] = args.name.endsWith("-ca") ? FAKE_CA : FAKE_LEAF;
        if (args.type === "command:remote:Command") state["stdout"] = "";
        return { id: `${args.name}-id`, state };
      },
      call: (args) => args.inputs,
    },
    "pi-im",
    "test",
    false,
  );
  return recorded;
}

export function resetRecorded(): void {
  recorded.length = 0;
  byUrn.clear();
}

/** Wait until Pulumi has registered everything queued so far. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 10));
}

export function unwrap(v: any): any {
  if (v && typeof v === "object" && v["4dabf18193072939515e22adb298388d"] === SECRET_SIG) return unwrap(v.value);
  return v;
}

export function isSecretValue(v: any): boolean {
  return !!v && typeof v === "object" && v["4dabf18193072939515e22adb298388d"] === SECRET_SIG;
}

/** Resolve an Output's value (test only). */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

export function hasTool(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
