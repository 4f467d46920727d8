// command:remote:* over SSH (ssh2): connect with retries, run a command, copy files by SFTP.
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { Client, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { type Archive, type Asset, isArchive, isAsset } from "./wire";
import { commandFailure, type RunResult, trimOutput } from "./local";
import type { OutputLog } from "./output-log";
import { shellQuote } from "./shell-quote";

export interface Connection {
  host: string;
  port?: number;
  user?: string;
  password?: string;
  privateKey?: string;
  privateKeyPassword?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
  hostKey?: string;
}

function connectOnce(conn: Connection): Promise<Client> {
  const config: ConnectConfig = {
    host: conn.host,
    port: conn.port ?? 22,
    username: conn.user ?? "root",
    password: conn.password,
    privateKey: conn.privateKey,
    passphrase: conn.privateKeyPassword,
    readyTimeout: (conn.perDialTimeout ?? 15) * 1000,
    // An emulated or busy Pi can be slow to answer keepalives: allow minutes, not seconds.
    keepaliveInterval: 15_000,
    keepaliveCountMax: 20,
  };
  if (conn.hostKey) {
    const expected = conn.hostKey.trim().split(/\s+/)[1] ?? conn.hostKey.trim();
    config.hostVerifier = (key: Buffer) => key.toString("base64") === expected;
  }
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once("ready", () => resolve(client));
    client.once("error", (err) => { client.end(); reject(err); });
    client.connect(config);
  });
}

/** Dials until it works or dialErrorLimit attempts failed (the upstream default is 10). */
export async function connect(conn: Connection): Promise<Client> {
  const limit = conn.dialErrorLimit === undefined ? 10 : conn.dialErrorLimit < 0 ? Infinity : Math.max(1, conn.dialErrorLimit);
  let lastError: unknown;
  for (let attempt = 1; attempt <= limit; attempt++) {
    try {
      return await connectOnce(conn);
    } catch (err) {
      lastError = err;
      // Authentication failures will not heal by retrying.
      if (err instanceof Error && /authentication/i.test(err.message)) break;
      if (attempt < limit) await new Promise((r) => setTimeout(r, Math.min(1000 * attempt, 5000)));
    }
  }
  const why = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`could not connect over SSH to ${conn.user ?? "root"}@${conn.host}:${conn.port ?? 22}: ${why}`);
}

/** sshd drops client-sent variables unless AcceptEnv allows them, so they are exported in-line. */
export function withEnvironment(command: string, env: Record<string, string> | undefined): string {
  const entries = Object.entries(env ?? {});
  if (entries.length === 0) return command;
  for (const [k] of entries) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`environment variable name ${JSON.stringify(k)} is not valid in a shell`);
  }
  return `${entries.map(([k, v]) => `export ${k}=${shellQuote(v)}`).join("; ")}; ${command}`;
}

export async function runRemote(conn: Connection, command: string, env?: Record<string, string>, stdin?: string, log?: OutputLog): Promise<RunResult> {
  const client = await connect(conn);
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      client.exec(withEnvironment(command, env), (err, stream) => {
        if (err) return reject(err);
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let code: number | null = null;
        let signal: string | null = null;
        stream.on("data", (d: Buffer) => { stdout.push(d); log?.stdout?.(d); });
        stream.stderr.on("data", (d: Buffer) => { stderr.push(d); log?.stderr?.(d); });
        stream.on("exit", (c: number | null, s?: string) => { code = c; signal = s ?? null; });
        stream.on("close", () => {
          const out = { stdout: trimOutput(Buffer.concat(stdout).toString()), stderr: trimOutput(Buffer.concat(stderr).toString()) };
          // Like upstream, every line is delivered before the command's result is.
          void (log?.flush() ?? Promise.resolve()).then(() => {
            if (code === 0) resolve(out);
            else reject(commandFailure(command, code, signal, out));
          });
        });
        stream.end(stdin ?? "");
      });
    });
  } finally {
    client.end();
  }
}

function sftpOf(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

function sftpCall(fn: (cb: (err: Error | null | undefined) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

async function mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
  const parts = dir.split("/").filter(Boolean);
  let current = dir.startsWith("/") ? "" : ".";
  for (const part of parts) {
    current = `${current}/${part}`;
    const here = current;
    await sftpCall((cb) => sftp.mkdir(here, (err) => cb(err && (err as { code?: number }).code !== 4 ? err : undefined))).catch(async (err) => {
      // SFTP reports "already exists" as a generic failure: accept it when the path is a directory.
      const isDir = await new Promise<boolean>((res) => sftp.stat(here, (e, st) => res(!e && st.isDirectory())));
      if (!isDir) throw err;
    });
  }
}

async function putAsset(sftp: SFTPWrapper, asset: Asset, remotePath: string): Promise<void> {
  await mkdirs(sftp, path.posix.dirname(remotePath));
  if (asset.path !== undefined) {
    const local = asset.path;
    await sftpCall((cb) => sftp.fastPut(local, remotePath, cb));
  } else if (asset.text !== undefined) {
    const text = asset.text;
    await sftpCall((cb) => sftp.writeFile(remotePath, text, cb));
  } else {
    throw new Error(`asset for ${remotePath} has neither a path nor text (remote URIs are not supported)`);
  }
}

async function putDirectory(sftp: SFTPWrapper, localDir: string, remoteDir: string): Promise<void> {
  await mkdirs(sftp, remoteDir);
  for (const entry of await fs.readdir(localDir, { withFileTypes: true })) {
    const from = path.join(localDir, entry.name);
    const to = path.posix.join(remoteDir, entry.name);
    if (entry.isDirectory()) await putDirectory(sftp, from, to);
    else if (entry.isFile()) await putAsset(sftp, { path: from }, to);
  }
}

async function putArchive(sftp: SFTPWrapper, archive: Archive, remoteDir: string): Promise<void> {
  if (archive.assets) {
    for (const [name, member] of Object.entries(archive.assets)) {
      const to = path.posix.join(remoteDir, name);
      if (isArchive(member)) await putArchive(sftp, member, to);
      else await putAsset(sftp, member as Asset, to);
    }
  } else if (archive.path !== undefined && (await fs.stat(archive.path)).isDirectory()) {
    await putDirectory(sftp, archive.path, remoteDir);
  } else {
    throw new Error(`archive for ${remoteDir}: only folders and asset maps can be copied (got ${archive.path ?? archive.uri})`);
  }
}

/** Copies a file asset to remotePath, or an archive's contents into the folder remotePath. */
export async function copyToRemote(conn: Connection, source: unknown, remotePath: string): Promise<void> {
  const client = await connect(conn);
  try {
    const sftp = await sftpOf(client);
    if (isAsset(source)) await putAsset(sftp, source, remotePath);
    else if (isArchive(source)) await putArchive(sftp, source, remotePath);
    else throw new Error("source must be an asset or an archive");
  } finally {
    client.end();
  }
}
