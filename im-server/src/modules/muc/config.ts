// A room's configuration and its XEP-0004 forms: the muc#roomconfig form owners fill in
// (XEP-0045 §10.2), and the muc#roominfo form in the room's disco#info (§6.4).
import { parseJid } from '../../core/jid.js';
import { Element, xml } from '../../core/xml.js';

export const NS_DATA = 'jabber:x:data';
export const FORM_CONFIG = 'http://jabber.org/protocol/muc#roomconfig';
export const FORM_INFO = 'http://jabber.org/protocol/muc#roominfo';

export type Whois = 'anyone' | 'moderators';
export type AllowPm = 'anyone' | 'participants' | 'moderators' | 'none';

export interface RoomConfig {
  name: string;
  description: string;
  persistent: boolean;
  /** Listed in the service's disco#items. */
  public: boolean;
  membersOnly: boolean;
  moderated: boolean;
  /** '' when the room has no password. */
  password: string;
  whois: Whois;
  /** 0: the service's limit (muc.maxOccupants). */
  maxUsers: number;
  /** Participants (not only moderators) may change the subject. */
  changeSubject: boolean;
  /** Occupants (not only admins) may invite others; in members-only rooms that makes the invitee a member. */
  allowInvites: boolean;
  allowPm: AllowPm;
  /** Messages kept for new occupants (bounded by muc.historyMessages). */
  historyLength: number;
}

export function defaultConfig(historyLength: number): RoomConfig {
  return {
    name: '', description: '', persistent: false, public: true, membersOnly: false, moderated: false, password: '',
    whois: 'moderators', maxUsers: 0, changeSubject: false, allowInvites: false, allowPm: 'anyone', historyLength,
  };
}

/** Reads a stored config, filling fields added since it was written. */
export function loadConfig(json: string, historyLength: number): RoomConfig {
  return { ...defaultConfig(historyLength), ...(JSON.parse(json) as Partial<RoomConfig>) };
}

const field = (type: string, v: string, label: string | undefined, values: string[], options?: [string, string][]): Element => {
  const f = xml('field', { type, var: v, label });
  for (const [label, value] of options ?? []) f.append(xml('option', { label }, xml('value', {}, value)));
  for (const value of values) f.append(xml('value', {}, value));
  return f;
};
const bool = (b: boolean): string => (b ? '1' : '0');

export interface FormContext { owners: string[]; admins: string[]; maxOccupants: number; maxHistory: number }

/** The form an owner gets (muc#owner get). */
export function configForm(c: RoomConfig, ctx: FormContext): Element {
  const sizes = [5, 10, 20, 30, 50, 100, 200, 500, 1000].filter((n) => n < ctx.maxOccupants);
  const maxUsers = c.maxUsers === 0 ? String(ctx.maxOccupants) : String(c.maxUsers);
  return xml('x', { xmlns: NS_DATA, type: 'form' },
    xml('title', {}, 'Room configuration'),
    field('hidden', 'FORM_TYPE', undefined, [FORM_CONFIG]),
    field('text-single', 'muc#roomconfig_roomname', 'Name', [c.name]),
    field('text-single', 'muc#roomconfig_roomdesc', 'Description', [c.description]),
    field('boolean', 'muc#roomconfig_persistentroom', 'Keep the room when the last occupant leaves (persistent)', [bool(c.persistent)]),
    field('boolean', 'muc#roomconfig_publicroom', 'List the room in the directory (public)', [bool(c.public)]),
    field('boolean', 'muc#roomconfig_membersonly', 'Only members may enter', [bool(c.membersOnly)]),
    field('boolean', 'muc#roomconfig_moderatedroom', 'Only participants with voice may speak (moderated)', [bool(c.moderated)]),
    field('boolean', 'muc#roomconfig_passwordprotectedroom', 'A password is needed to enter', [bool(c.password !== '')]),
    field('text-private', 'muc#roomconfig_roomsecret', 'Password', [c.password]),
    field('list-single', 'muc#roomconfig_whois', 'Who may see the real addresses of occupants', [c.whois],
      [['Moderators only', 'moderators'], ['Anyone', 'anyone']]),
    field('list-single', 'muc#roomconfig_maxusers', 'Maximum number of occupants', [maxUsers],
      [...sizes.map((n): [string, string] => [String(n), String(n)]), [String(ctx.maxOccupants), String(ctx.maxOccupants)]]),
    field('boolean', 'muc#roomconfig_changesubject', 'Participants may change the subject', [bool(c.changeSubject)]),
    field('boolean', 'muc#roomconfig_allowinvites', 'Occupants may invite others', [bool(c.allowInvites)]),
    field('list-single', 'muc#roomconfig_allowpm', 'Who may send private messages', [c.allowPm],
      [['Anyone', 'anyone'], ['Participants', 'participants'], ['Moderators', 'moderators'], ['Nobody', 'none']]),
    field('text-single', 'muc#maxhistoryfetch', `Messages shown to new occupants (at most ${ctx.maxHistory})`, [String(c.historyLength)]),
    field('jid-multi', 'muc#roomconfig_roomowners', 'Owners', ctx.owners),
    field('jid-multi', 'muc#roomconfig_roomadmins', 'Admins', ctx.admins),
  );
}

export interface ConfigChange {
  config: RoomConfig;
  /** Full replacement lists when the form carried them. */
  owners?: string[];
  admins?: string[];
}

/** Applies a submitted form to a copy of the config; a string is the error text for a bad value. */
export function applyConfigForm(current: RoomConfig, form: Element, ctx: FormContext): ConfigChange | string {
  const c: RoomConfig = { ...current };
  const out: ConfigChange = { config: c };
  let protectedFlag: boolean | undefined;
  let secret: string | undefined;
  for (const f of form.getChildren('field')) {
    const name = f.attrs.var ?? '';
    const values = f.getChildren('value').map((v) => v.text());
    const v = values[0] ?? '';
    const asBool = (): boolean | string => (v === '1' || v === 'true' ? true : v === '0' || v === 'false' || v === '' ? false : `${name}: expected a boolean, got "${v}"`);
    const setBool = (k: 'persistent' | 'public' | 'membersOnly' | 'moderated' | 'changeSubject' | 'allowInvites'): string | undefined => {
      const b = asBool();
      if (typeof b === 'string') return b;
      c[k] = b;
      return undefined;
    };
    let err: string | undefined;
    switch (name) {
      case 'FORM_TYPE': if (v !== FORM_CONFIG && v !== '') err = `FORM_TYPE must be ${FORM_CONFIG}`; break;
      case 'muc#roomconfig_roomname': c.name = v.slice(0, 200); break;
      case 'muc#roomconfig_roomdesc': c.description = values.join('\n').slice(0, 2000); break;
      case 'muc#roomconfig_persistentroom': err = setBool('persistent'); break;
      case 'muc#roomconfig_publicroom': err = setBool('public'); break;
      case 'muc#roomconfig_membersonly': err = setBool('membersOnly'); break;
      case 'muc#roomconfig_moderatedroom': err = setBool('moderated'); break;
      case 'muc#roomconfig_changesubject': err = setBool('changeSubject'); break;
      case 'muc#roomconfig_allowinvites': err = setBool('allowInvites'); break;
      case 'muc#roomconfig_passwordprotectedroom': { const b = asBool(); if (typeof b === 'string') err = b; else protectedFlag = b; break; }
      case 'muc#roomconfig_roomsecret': secret = v; break;
      case 'muc#roomconfig_whois':
        if (v === 'anyone' || v === 'moderators') c.whois = v; else err = `muc#roomconfig_whois: expected anyone or moderators, got "${v}"`;
        break;
      case 'muc#roomconfig_allowpm':
        if (v === 'anyone' || v === 'participants' || v === 'moderators' || v === 'none') c.allowPm = v; else err = `muc#roomconfig_allowpm: unknown value "${v}"`;
        break;
      case 'muc#roomconfig_maxusers': {
        const n = v === 'none' || v === '' ? 0 : Number(v);
        if (!Number.isInteger(n) || n < 0) err = `muc#roomconfig_maxusers: expected a number, got "${v}"`;
        else c.maxUsers = n >= ctx.maxOccupants ? 0 : n;
        break;
      }
      case 'muc#maxhistoryfetch': case 'muc#roomconfig_historylength': {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) err = `${name}: expected a number, got "${v}"`;
        else c.historyLength = Math.min(n, ctx.maxHistory);
        break;
      }
      case 'muc#roomconfig_roomowners': case 'muc#roomconfig_roomadmins': {
        const jids: string[] = [];
        for (const s of values) {
          if (s.trim() === '') continue;
          const j = parseJid(s.trim());
          if (!j) { err = `${name}: "${s}" is not a valid JID`; break; }
          jids.push(j.bare);
        }
        if (name === 'muc#roomconfig_roomowners') out.owners = jids; else out.admins = jids;
        break;
      }
      default: break; // fields of other servers' forms are ignored
    }
    if (err) return err;
  }
  if (protectedFlag === false) c.password = '';
  else if (secret !== undefined) c.password = secret;
  if (protectedFlag === true && c.password === '') return 'a password-protected room needs a password (muc#roomconfig_roomsecret)';
  return out;
}

/** The extended disco#info form of a room (XEP-0128). */
export function roomInfoForm(c: RoomConfig, occupants: number, subject: string): Element {
  return xml('x', { xmlns: NS_DATA, type: 'result' },
    field('hidden', 'FORM_TYPE', undefined, [FORM_INFO]),
    field('text-single', 'muc#roomconfig_roomname', 'Name', [c.name]),
    field('text-single', 'muc#roominfo_description', 'Description', [c.description]),
    field('text-single', 'muc#roominfo_occupants', 'Number of occupants', [String(occupants)]),
    field('text-single', 'muc#roominfo_subject', 'Subject', [subject]),
    field('boolean', 'muc#roominfo_subjectmod', 'Participants may change the subject', [bool(c.changeSubject)]),
    field('text-single', 'muc#maxhistoryfetch', 'Messages shown to new occupants', [String(c.historyLength)]),
    field('list-single', 'muc#roomconfig_whois', 'Who may see real addresses', [c.whois]),
    field('boolean', 'muc#roomconfig_allowinvites', 'Occupants may invite others', [bool(c.allowInvites)]),
    field('list-single', 'muc#roomconfig_allowpm', 'Who may send private messages', [c.allowPm]),
  );
}
