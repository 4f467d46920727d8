// Admin command on the data directory's database (safe while the server runs: SQLite WAL).
//   admin adduser alice@localhost --password-file F | --password-stdin
//   admin passwd alice@localhost --password-file F | --password-stdin
//   admin deluser alice@localhost
//   admin users
//   admin invite [--ttl-hours 168] [--uses N | --unlimited]   prints the token, then its xmpp: URI
//   admin invites                                           every invite with its state and uses
//   admin revoke-invite TOKEN
// Common: --data-dir DIR (default ./data, env PI_IM_DATA_DIR), --domain D (checks user@D)
import { randomBytes } from 'node:crypto';

/** 144 random bits, base64url; never starting with '-', which command lines would take for an option. */
function newToken(): string {
  for (;;) {
    const t = randomBytes(18).toString('base64url');
    if (!t.startsWith('-')) return t;
  }
}
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { localProblem, newUsernameProblem, parseJid } from './core/jid.js';
import { makeAccount } from './core/sasl.js';
import pino from 'pino';
import { loadConfig } from './config.js';
import { Host } from './core/host.js';
import { createMetrics } from './core/metrics.js';
import { loadModules } from './modules/index.js';
import { InviteStore } from './modules/invites-store.js';
import { openBackend } from './server.js';
import { Accounts } from './storage/accounts.js';

function fail(msg: string): never {
  console.error(`admin: ${msg}`);
  process.exit(2);
}

async function readPassword(values: Record<string, unknown>): Promise<string> {
  let pw: string;
  if (typeof values['password-file'] === 'string') pw = readFileSync(values['password-file'], 'utf8');
  else if (values['password-stdin']) pw = readFileSync(0, 'utf8');
  else fail('give the password with --password-file FILE or --password-stdin (never on the command line)');
  pw = pw.replace(/\r?\n$/, '');
  if (!pw) fail('the password is empty');
  return pw;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' }, 'domain': { type: 'string' }, 'password-file': { type: 'string' },
      'password-stdin': { type: 'boolean' }, 'ttl-hours': { type: 'string' }, 'iterations': { type: 'string' },
      'uses': { type: 'string' }, 'unlimited': { type: 'boolean' },
    },
  });
  const [cmd, arg] = positionals;
  const dataDir = values['data-dir'] ?? process.env.PI_IM_DATA_DIR ?? './data';
  const config = loadConfig([], { ...process.env, PI_IM_DATA_DIR: dataDir, ...(values.domain ? { PI_IM_DOMAIN: values.domain } : {}) });
  const db = await openBackend({ ...config, storage: { ...config.storage, commitWindowMs: 0, maxBatch: 1 } }, {});
  const accounts = await Accounts.open(db);
  const invites = await InviteStore.open(db);
  const username = (): string => {
    if (!arg) fail(`${cmd} needs a user (alice or alice@domain)`);
    const jid = parseJid(arg.includes('@') ? arg : `${arg}@${values.domain ?? 'localhost'}`);
    if (!jid || !jid.local || jid.resource) {
      const local = arg.includes('@') ? arg.slice(0, arg.lastIndexOf('@')) : arg;
      // An account named before the PRECIS username rules, which they refuse now: deluser can still remove it.
      if (cmd === 'deluser' && local && accounts.exists(local)) return local;
      fail(`"${arg}" is not a valid user JID${local && localProblem(local) ? `: ${localProblem(local)}` : ''}`);
    }
    if (values.domain && jid.domain !== values.domain) fail(`${arg} is not on ${values.domain}`);
    return jid.local;
  };
  const iterations = Number(values.iterations ?? 4096);
  try {
    switch (cmd) {
      case 'adduser': {
        const u = username();
        const policy = newUsernameProblem(u);
        if (policy) fail(policy);
        if (!(await accounts.create(await makeAccount(u, await readPassword(values), iterations)))) fail(`${u} exists already`);
        console.log(`created ${u}`);
        break;
      }
      case 'passwd': {
        const u = username();
        if (!accounts.exists(u)) fail(`no account ${u}`);
        await accounts.setCredentials(await makeAccount(u, await readPassword(values), iterations));
        console.log(`password of ${u} changed`);
        break;
      }
      case 'deluser': {
        const u = username();
        if (!accounts.exists(u)) fail(`no account ${u}`);
        // Every module removes what it keeps for the user, as for an in-band removal.
        const host = new Host(config, db, accounts, pino({ level: 'silent' }), createMetrics());
        await loadModules(host);
        await host.removeAccount(u);
        console.log(`deleted ${u}`);
        break;
      }
      case 'users':
        for (const u of accounts.list()) console.log(u);
        break;
      case 'invite': {
        const hours = Number(values['ttl-hours'] ?? 168);
        if (!(hours > 0)) fail('--ttl-hours must be a positive number');
        if (values.unlimited && values.uses !== undefined) fail('give --uses N or --unlimited, not both');
        const uses = values.unlimited ? null : Number(values.uses ?? 1);
        if (uses !== null && !(Number.isInteger(uses) && uses >= 1)) fail('--uses must be a whole number of at least 1');
        const inv = await invites.create(newToken(), hours * 3600, uses);
        // XEP-0401 §4: clients open xmpp:<domain>?register;preauth=<token>.
        const domain = values.domain ?? process.env.PI_IM_DOMAIN ?? 'localhost';
        console.log(inv.token);
        console.log(`xmpp:${domain}?register;preauth=${inv.token}`);
        break;
      }
      case 'invites':
        for (const i of await invites.list()) {
          const state = i.revokedAt !== undefined ? 'revoked' : i.expiresAt <= Date.now() ? 'expired'
            : i.maxUses !== null && i.uses >= i.maxUses ? 'used up' : 'valid';
          const uses = `${i.uses}/${i.maxUses ?? 'unlimited'} uses`;
          console.log(`${i.token}\t${state}\texpires ${new Date(i.expiresAt).toISOString()}\t${uses}\t${i.users.length ? `used by ${i.users.join(',')}` : 'unused'}`);
        }
        break;
      case 'revoke-invite':
        if (!arg) fail('revoke-invite needs the token');
        if (!(await invites.get(arg))) fail(`no invite ${arg}`);
        if (!(await invites.revoke(arg))) fail(`invite ${arg} was revoked already`);
        console.log(`revoked ${arg}`);
        break;
      default:
        fail('commands: adduser USER, passwd USER, deluser USER, users, invite [--ttl-hours N] [--uses N | --unlimited], invites, revoke-invite TOKEN; --data-dir DIR, --domain D');
    }
  } finally {
    await db.close();
  }
}

// Modules loaded for deluser may keep timers (expiry sweeps): the command is done when main is.
main().then(() => process.exit(0), (e: Error) => fail(e.message));
