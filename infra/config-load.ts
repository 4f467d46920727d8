// Reads the stack's `pi-im:*` config from the Pulumi runtime, validates it (config.ts) and resolves
// the secrets into Outputs marked secret. The only place that touches pulumi.Config.
import * as fs from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { NS, SECRET_KEYS, SiteConfig, parseConfig, SecretKey } from "./config";

export interface Secrets {
  sshPrivateKey: pulumi.Output<string>;
  backupSshKey?: pulumi.Output<string>;
  tlsCert?: pulumi.Output<string>;
  tlsKey?: pulumi.Output<string>;
}

export interface LoadedConfig {
  site: SiteConfig;
  secrets: Secrets;
}

// isConfigSecret and the store are exported by the runtime but missing from its type declarations.
const runtimeConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret?: (k: string) => boolean };
const runtimeState = require("@pulumi/pulumi/runtime/state") as { getStore?: () => { config: Record<string, string | undefined> } };

/** Engines that tell the program which keys are secret set PULUMI_CONFIG_SECRET_KEYS. */
function secretKeysKnown(): boolean {
  const list = runtimeState.getStore?.().config["PULUMI_CONFIG_SECRET_KEYS"] ?? process.env["PULUMI_CONFIG_SECRET_KEYS"];
  return typeof list === "string" && list.trim().startsWith("[");
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const all = pulumi.runtime.allConfig();
  const raw: Record<string, unknown> = {};
  const secrets = new Set<string>();
  const plainSecrets = new Set<string>();
  const checkPlain = secretKeysKnown();
  for (const [fullKey, value] of Object.entries(all)) {
    if (!fullKey.startsWith(`${NS}:`)) continue;
    const key = fullKey.slice(NS.length + 1);
    if ((SECRET_KEYS as readonly string[]).includes(key)) {
      if (value !== "") secrets.add(key);
      if (checkPlain && runtimeConfig.isConfigSecret && !runtimeConfig.isConfigSecret(fullKey)) plainSecrets.add(key);
      continue;
    }
    raw[key] = parseValue(value);
  }
  const site = parseConfig(raw, { secrets, plainSecrets, env, fileExists: (p) => fs.existsSync(p) });
  const cfg = new pulumi.Config(NS);
  const get = (key: SecretKey) => (secrets.has(key) ? cfg.requireSecret(key) : undefined);
  const sshPrivateKey =
    site.sshKey.source === "config"
      ? cfg.requireSecret("sshPrivateKey")
      : pulumi.secret(fs.readFileSync(site.sshKey.path, "utf8"));
  return {
    site,
    secrets: { sshPrivateKey, backupSshKey: get("backupSshKey"), tlsCert: get("tlsCert"), tlsKey: get("tlsKey") },
  };
}

/** Structured config arrives as JSON text; plain strings stay strings. */
function parseValue(value: string): unknown {
  const t = value.trim();
  if (t.startsWith("{") || t.startsWith("[") || t === "true" || t === "false" || /^-?\d+(\.\d+)?$/.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      return value;
    }
  }
  return value;
}
