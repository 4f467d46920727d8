// XEP-0077 in-band registration under a policy (closed | invite | open), invite tokens
// (XEP-0401 <preauth/>; single- or multi-use, expiring, revocable), password change and account removal.
import type { PreAuthEvent } from '../core/c2s.js';
import { InviteStore } from './invites-store.js';
import type { Host, StanzaEvent } from '../core/host.js';
import { enforceLocal, newUsernameProblem } from '../core/jid.js';
import { makeAccount } from '../core/sasl.js';
import { NS, errorReply, iqResult } from '../core/stanza.js';
import { xml } from '../core/xml.js';
import type { InviteStatus } from '../storage/types.js';

const INVITE_TEXT: Record<Exclude<InviteStatus, 'valid'>, string> = {
  'unknown': 'unknown invite: check the link or ask for a new one',
  'expired': 'this invite has expired: ask for a new one',
  'revoked': 'this invite was revoked: ask for a new one',
  'used-up': 'this invite has been used as often as it allows: ask for a new one',
};

export default async function register(host: Host): Promise<void> {
  host.features.add(NS.register);
  const invites = await InviteStore.open(host.db);
  const policy = host.config.registration;
  const iterations = host.config.scramIterations;

  if (policy !== 'closed') {
    host.hooks.on<PreAuthEvent>(`iq-preauth/${NS.preauth}`, async ({ stanza, stream, reply }) => {
      const token = stanza.firstElement()!.attrs.token ?? '';
      if (stanza.attrs.type !== 'set') { reply(errorReply(stanza, 'bad-request', 'send the token with an iq of type set')); return true; }
      const status = await invites.status(token);
      if (status !== 'valid') { reply(errorReply(stanza, 'item-not-found', INVITE_TEXT[status])); return true; }
      stream.invite = token;
      reply(iqResult(stanza));
      return true;
    });

    host.hooks.on<PreAuthEvent>(`iq-preauth/${NS.register}`, async ({ stanza, stream, reply }) => {
      const query = stanza.firstElement()!;
      if (stanza.attrs.type === 'get') {
        reply(iqResult(stanza, xml('query', { xmlns: NS.register },
          xml('instructions', {}, policy === 'invite' ? 'Registration needs an invite (XEP-0401 preauth). Choose a username and password.' : 'Choose a username and password.'),
          xml('username'), xml('password'))));
        return true;
      }
      if (stanza.attrs.type !== 'set') return true;
      if (query.getChild('remove')) { reply(errorReply(stanza, 'bad-request', 'log in to remove an account')); return true; }
      // PRECIS UsernameCaseMapped (RFC 8265), as at login: "Alice" and "ａｌｉｃｅ" are alice, and
      // names with invisible, bidi-control or other disallowed characters are refused with the reason.
      const prepared = enforceLocal(query.getChildText('username') ?? '');
      const password = query.getChildText('password') ?? '';
      if (typeof prepared !== 'string') { reply(errorReply(stanza, 'not-acceptable', prepared.problem)); return true; }
      const mixed = newUsernameProblem(prepared);
      if (mixed) { reply(errorReply(stanza, 'not-acceptable', mixed)); return true; }
      const username = prepared;
      if (password.length === 0) { reply(errorReply(stanza, 'not-acceptable', 'a password is needed')); return true; }
      const invite = policy === 'invite' ? stream.invite : undefined;
      if (policy === 'invite') {
        if (!invite) { reply(errorReply(stanza, 'forbidden', 'registration on this server needs an invite (XEP-0401 preauth token)')); return true; }
        if (host.accountExists(username) && await host.accounts.existsNow(username)) { reply(errorReply(stanza, 'conflict', 'that username is taken')); return true; }
        // Taken before the account exists, so parallel registrations cannot exceed its uses.
        if (!(await invites.consume(invite, username))) {
          const status = await invites.status(invite);
          reply(errorReply(stanza, 'forbidden', status === 'valid' ? 'the invite could not be used' : INVITE_TEXT[status]));
          return true;
        }
      }
      makeAccount(username, password, iterations).then(async (account) => {
        if (!(await host.accounts.create(account))) {
          if (invite) await invites.release(invite, username);
          return reply(errorReply(stanza, 'conflict', 'that username is taken'));
        }
        host.log.info({ user: username }, 'account registered');
        // A name used before (removed by pi-im-admin while this node ran): caches start afresh.
        host.hooks.notify('account-created', { username });
        reply(iqResult(stanza));
      }).catch((err: Error) => {
        if (invite) invites.release(invite, username).catch(() => {});
        host.log.error({ err: err.message }, 'registration failed');
        reply(errorReply(stanza, 'internal-server-error'));
      });
      return true;
    });
  }

  // After login: what is registered, password change, removal.
  for (const target of ['bare', 'host']) {
    host.hooks.on<StanzaEvent>(`iq-get/${target}/${NS.register}:query`, (e) => {
      if (!e.origin || (target === 'bare' && e.to.bare !== e.from.bare)) return false;
      host.reply(e, iqResult(e.stanza, xml('query', { xmlns: NS.register }, xml('registered'), xml('username', {}, e.origin.username))));
      return true;
    });
    host.hooks.on<StanzaEvent>(`iq-set/${target}/${NS.register}:query`, (e) => {
      const session = e.origin;
      if (!session || (target === 'bare' && e.to.bare !== e.from.bare)) return false;
      const query = e.stanza.firstElement()!;
      if (query.getChild('remove')) {
        host.removeAccount(session.username).then(() => {
          host.log.info({ user: session.username }, 'account removed');
          session.send(iqResult(e.stanza));
          for (const s of [...host.router.sessionsOf(session.jid.bare)]) s.close('not-authorized', 'the account was removed');
        }, () => host.reply(e, errorReply(e.stanza, 'internal-server-error')));
        return true;
      }
      const username = query.getChildText('username');
      const password = query.getChildText('password') ?? '';
      if ((username !== undefined && host.prepUsername(username) !== session.username) || password.length === 0) {
        host.reply(e, errorReply(e.stanza, 'bad-request', 'give your own username and a new password'));
        return true;
      }
      makeAccount(session.username, password, iterations).then(async (account) => {
        await host.accounts.setCredentials(account);
        host.log.info({ user: session.username }, 'password changed');
        host.reply(e, iqResult(e.stanza));
      }).catch(() => host.reply(e, errorReply(e.stanza, 'internal-server-error')));
      return true;
    });
  }
}
