// A real PostgreSQL for tests, from Debian's binaries: initdb into a temporary folder, a free
// port, trust authentication on loopback only, stopped (and its folder removed) after. As root,
// PostgreSQL refuses to run, so it runs as the `postgres` user the Debian package created.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  url: string;
  port: number;
  /** A fresh, empty database on this server. */
  database(): Promise<string>;
  /** Stops the server (fast shutdown); start() brings it back on the same port and data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Kills the postmaster with SIGKILL, as a power cut would. */
  kill(): Promise<void>;
  destroy(): Promise<void>;
  /** For process exit handlers, which cannot wait: stops the server at once and removes its folder. */
  destroySync(): void;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions[0]) throw new Error('PostgreSQL binaries not found in /usr/lib/postgresql/*/bin: run `npm run setup` (Debian package postgresql)');
  return join(root, versions[0], 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

const asRoot = process.getuid?.() === 0;
function command(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'pi-im-pg-'));
  const data = join(dir, 'data');
  if (asRoot) { const id = spawnSync('id', ['-u', 'postgres']).stdout.toString().trim(); const gid = spawnSync('id', ['-g', 'postgres']).stdout.toString().trim(); chownSync(dir, Number(id), Number(gid)); }
  const [cmd, args] = command(join(bin, 'initdb'), ['-D', data, '-U', 'pi', '--auth=trust', '-E', 'UTF8', '--no-instructions']);
  const init = spawnSync(cmd, args, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let log = '';
  const url = (db = 'postgres'): string => `postgres://pi@127.0.0.1:${port}/${db}`;

  const start = async (): Promise<void> => {
    const [c, a] = command(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=on', '-c', 'synchronous_commit=on']);
    const p = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout!.on('data', (d) => { log += d; });
    p.stderr!.on('data', (d) => { log += d; });
    const until = Date.now() + 30_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`postgres exited (${p.exitCode}):\n${log}`);
      const client = new pg.Client({ connectionString: url() });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => {});
        if (Date.now() > until) throw new Error(`postgres did not accept connections in 30 s:\n${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const exited = (p: ChildProcess): Promise<void> => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    // The postmaster itself, not runuser in front of it.
    const pid = Number((spawnSync('head', ['-1', join(data, 'postmaster.pid')]).stdout ?? '').toString().trim());
    if (pid) process.kill(pid, signal); else p.kill(signal);
    await exited(p);
    if (signal === 'SIGKILL') {
      // The backends of a killed postmaster exit once they notice; start() must not race them.
      spawnSync('pkill', ['-KILL', '-f', `-D ${data}`]);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  await start();
  let n = 0;
  return {
    url: url(),
    port,
    async database() {
      const name = `t${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return url(name);
    },
    stop: () => stopWith('SIGINT'),
    start,
    kill: () => stopWith('SIGKILL'),
    async destroy() {
      await stopWith('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
    destroySync() {
      const pid = Number((spawnSync('head', ['-1', join(data, 'postmaster.pid')]).stdout ?? '').toString().trim());
      if (pid) { try { process.kill(pid, 'SIGQUIT'); } catch { /* gone already */ } }
      spawnSync('sleep', ['0.3']);
      spawnSync('pkill', ['-KILL', '-f', `-D ${data}`]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
