// Starts one node: storage, host and modules, TCP and HTTP listeners. Used by main.ts and
// by tests that want the server in-process (they still talk to it over sockets only).
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import pino, { type Logger } from 'pino';
import type { Config } from './config.js';
import { Host } from './core/host.js';
import { localProblem, prepLocal } from './core/jid.js';
import { createMetrics } from './core/metrics.js';
import { makeAccount } from './core/sasl.js';
import { Streams } from './core/streams.js';
import { ensureCertificate, tlsOptions } from './core/tls.js';
import { loadModules } from './modules/index.js';
import { SqliteStorage } from './storage/sqlite.js';
import { SqliteBackend } from './storage/sqlite-backend.js';
import { Accounts } from './storage/accounts.js';
import { PostgresBackend, redactUrl } from './storage/postgres.js';
import type { Backend } from './storage/store.js';
import { isDiskFull } from './storage/types.js';
import { startHttp } from './transports/http.js';
import { startTcp } from './transports/tcp.js';
import { readFileSync } from 'node:fs';

export interface RunningServer {
  c2sPort: number;
  /** Set when the XEP-0368 direct TLS listener is on. */
  c2sDirectTlsPort: number | undefined;
  httpPort: number;
  log: Logger;
  /** Closes all streams with system-shutdown, stops listening, commits storage. */
  stop(): Promise<void>;
}

export function dbPath(dataDir: string): string {
  return join(resolve(dataDir), 'pi-im.sqlite');
}

export async function startServer(config: Config, log: Logger = pino({ level: config.logLevel })): Promise<RunningServer> {
  const metrics = createMetrics();
  let storageProblem: string | undefined;
  const commits = {
    onCommit: (writes: number, seconds: number): void => {
      metrics.fsyncs.inc(); metrics.batchedWrites.inc(writes); metrics.commitLatency.observe(seconds);
      if (storageProblem) { log.warn({ was: storageProblem }, 'storage commits again'); storageProblem = undefined; }
    },
    onError: (err: Error): void => {
      metrics.commitFailures.inc();
      const problem = storageFailure(err, config.dataDir);
      // Once per outage at error level; every further failed batch at debug.
      log[problem === storageProblem ? 'debug' : 'error']({ err: err.message }, `storage commit failed, none of its writes was acknowledged: ${problem}`);
      storageProblem = problem;
    },
  };
  const db = await openBackend(config, commits, log);
  const accounts = await Accounts.open(db);
  const accountWatch = accounts.watch(3000);
  const host = new Host(config, db, accounts, log, metrics);
  for (const a of config.accounts) {
    const username = host.prepUsername(a.username)!;
    if (accounts.exists(username)) continue;
    const password = a.passwordFile ? readFileSync(a.passwordFile, 'utf8').trim() : process.env[a.passwordEnv!];
    if (!password) throw new Error(`accounts: no password for ${username} (${a.passwordFile ? `file ${a.passwordFile} is empty` : `env ${a.passwordEnv} is not set`})`);
    await accounts.create(await makeAccount(username, password, config.scramIterations));
    log.info({ user: username }, 'account created from config');
  }
  // Names stored before the PRECIS username rules (RFC 8265) that those rules refuse (invisible,
  // bidi-control or symbol characters): such an account can no longer log in. Said once per start.
  for (const u of accounts.list()) {
    if (prepLocal(u) !== u) log.warn({ user: u, problem: localProblem(u) ?? 'not in its prepared form' }, 'account name not valid under the username rules: it cannot log in; remove it with "admin deluser" and register a valid name');
  }
  const modules = await loadModules(host);
  const tlsFiles = ensureCertificate(config.dataDir, config.domain, config.tls.cert, config.tls.key);
  if (tlsFiles.generated) log.warn({ cert: tlsFiles.cert }, 'made a self-signed certificate; clients will ask to trust it');
  const streams = new Streams(host);
  let accepting = false;
  const tlsOpts = tlsOptions(tlsFiles);
  const context = createSecureContext(tlsOpts);
  const tcp = startTcp(host, streams, context);
  const directTls = config.c2sDirectTlsPort === undefined ? undefined : startTcp(host, streams, context, { directTls: tlsOpts });
  const http = startHttp(host, streams, { accepting: () => accepting, storageProblem: () => storageProblem ?? db.problem() ?? undefined });
  await Promise.all([
    new Promise<void>((res, rej) => { tcp.once('error', rej); tcp.listen(config.c2sPort, config.c2sHost, () => res()); }),
    new Promise<void>((res, rej) => { http.once('error', rej); http.listen(config.httpPort, config.httpHost, () => res()); }),
    directTls && new Promise<void>((res, rej) => { directTls.once('error', rej); directTls.listen(config.c2sDirectTlsPort, config.c2sHost, () => res()); }),
  ]);
  accepting = true;
  const c2sPort = (tcp.address() as AddressInfo).port;
  const httpPort = (http.address() as AddressInfo).port;
  const c2sDirectTlsPort = directTls && (directTls.address() as AddressInfo).port;
  log.info({ domain: config.domain, c2sPort, c2sDirectTlsPort, httpPort, registration: config.registration, modules, dataDir: resolve(config.dataDir) }, 'pi-im server ready');

  let stopping: Promise<void> | undefined;
  return {
    c2sPort, c2sDirectTlsPort, httpPort, log,
    stop() {
      stopping ??= (async () => {
        accepting = false;
        tcp.close();
        directTls?.close();
        http.close();
        streams.shutdown();
        await Promise.all([db.barrier().catch(() => {}), tcp.drained(3000), directTls?.drained(3000)]);
        accountWatch.stop();
        await db.close();
        http.closeAllConnections();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

/** The node's store: PostgreSQL with --db, else SQLite in the data dir. */
export async function openBackend(config: Config, commits: { onCommit?: (writes: number, seconds: number) => void; onError?: (err: Error) => void }, log?: Logger): Promise<Backend> {
  const s = config.storage;
  if (!s.url) return new SqliteBackend(new SqliteStorage({ path: dbPath(config.dataDir), ...s, ...commits }));
  const password = s.passwordFile ?? process.env.PI_IM_DB_PASSWORD_FILE;
  const pgBackend = new PostgresBackend({
    url: s.url, password: password ? readFileSync(password, 'utf8').trim() : undefined, poolSize: s.poolSize,
    commitWindowMs: s.commitWindowMs, maxBatch: s.maxBatch, maxCommitsPerSecond: s.maxCommitsPerSecond, ...commits,
  });
  log?.info({ db: redactUrl(s.url) }, 'storage: PostgreSQL');
  await pgBackend.ready();
  return pgBackend;
}

/** What an admin reads when a commit fails: the cause, and what to do about it. */
export function storageFailure(err: Error, dataDir: string): string {
  const code = (err as { code?: string }).code;
  if (isDiskFull(err)) return `the disk holding ${resolve(dataDir)} is full: free space there (old uploads, backups, logs); storing resumes by itself`;
  if (code?.startsWith('SQLITE_IOERR')) return `the disk holding ${resolve(dataDir)} fails to write (${code}): check it (dmesg, SMART) and restore from the last backup if it is dying`;
  if (code === 'SQLITE_READONLY') return `${resolve(dataDir)} became read-only (${code}): the file system was remounted read-only after an error; check the disk`;
  return `${code ?? 'error'}: ${err.message}`;
}
