// How the engine's property values look on the wire (Struct JSON with signature keys), and the
// few helpers a provider needs to read them: reveal secrets, recognise assets and archives.
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
export const ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The same value with every secret wrapper replaced by the value inside it. */
export function reveal<T = unknown>(v: unknown): T {
  if (Array.isArray(v)) return v.map((x) => reveal(x)) as T;
  if (!isObject(v)) return v as T;
  if (v[SIG_KEY] === SECRET_SIG) return reveal(v["value"]);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = reveal(x);
  return out as T;
}

/** True when a secret wrapper is anywhere inside v. */
export function containsSecret(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(containsSecret);
  if (!isObject(v)) return false;
  if (v[SIG_KEY] === SECRET_SIG) return true;
  return Object.values(v).some(containsSecret);
}

/** v wrapped as a secret, as the engine expects it on the wire. */
export function asSecret(v: unknown): Record<string, unknown> {
  return { [SIG_KEY]: SECRET_SIG, value: v };
}

export interface Asset { path?: string; text?: string; uri?: string; hash?: string }
export interface Archive { path?: string; assets?: Record<string, Asset | Archive>; uri?: string; hash?: string }

export function isAsset(v: unknown): v is Asset { return isObject(v) && v[SIG_KEY] === ASSET_SIG; }
export function isArchive(v: unknown): v is Archive { return isObject(v) && v[SIG_KEY] === ARCHIVE_SIG; }

/** Key-order-independent serialisation, for comparing old and new inputs. */
export function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stable(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v as Json);
}

export function pick(v: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (v[k] !== undefined && v[k] !== null) out[k] = v[k];
  return out;
}
