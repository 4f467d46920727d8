// JIDs (RFC 7622). The localpart (and so every username: registration, SASL, admin) is enforced
// with the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3, on the IdentifierClass of RFC 8264):
// fullwidth/halfwidth forms mapped to their decomposition, lower case, NFC, then only letters,
// digits, combining marks and printable ASCII allowed (no spaces, controls, symbols, invisible
// or default-ignorable code points such as U+200B, bidi controls such as U+202E, compatibility
// forms, unassigned code points), with the contextual rules for joiners and a few exceptions,
// and the Bidi Rule (RFC 5893) for right-to-left strings. RFC 7622 forbids " & ' / : < > @ too.
// Domain: NFC and lower case; resource: NFC, no controls.

export class Jid {
  readonly bare: string;
  readonly full: string;
  constructor(readonly local: string, readonly domain: string, readonly resource: string) {
    this.bare = local ? local + '@' + domain : domain;
    this.full = resource ? this.bare + '/' + resource : this.bare;
  }
  toString(): string { return this.full; }
  withResource(resource: string): Jid { return new Jid(this.local, this.domain, resource); }
  toBare(): Jid { return this.resource ? new Jid(this.local, this.domain, '') : this; }
}

const CONTROL = /[\u0000-\u001f\u007f]/;
/** RFC 7622 §3.3.1: not in a localpart, although PRECIS allows them. */
const JID_FORBIDDEN = /["&'/:<>@]/;

export function prepLocal(s: string): string | undefined {
  const r = enforceLocal(s);
  return typeof r === 'string' ? r : undefined;
}

/** Why a username (JID localpart) is refused, for the people who chose it; undefined when it is fine. */
export function localProblem(s: string): string | undefined {
  const r = enforceLocal(s);
  return typeof r === 'string' ? undefined : r.problem;
}

const hex = (cp: number): string => 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');

/** UsernameCaseMapped enforcement plus RFC 7622's exclusions: the prepared form, or the problem. */
export function enforceLocal(input: string): string | { problem: string } {
  // Plain ASCII (nearly every name): printable ASCII is all PVALID and left-to-right.
  if (/^[\x21-\x7e]*$/.test(input)) {
    const v = input.toLowerCase();
    if (v.length === 0) return { problem: 'the username is empty' };
    if (v.length > 1023) return { problem: 'the username is longer than 1023 bytes' };
    const bad = JID_FORBIDDEN.exec(v);
    return bad ? { problem: `the username contains "${bad[0]}", which is not allowed in an address` } : v;
  }
  const v = input.replace(WIDTH, (c) => c.normalize('NFKC')).toLowerCase().normalize('NFC');
  if (v.length === 0) return { problem: 'the username is empty' };
  if (Buffer.byteLength(v) > 1023) return { problem: 'the username is longer than 1023 bytes' };
  const cps = [...v].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < cps.length; i++) {
    const cp = cps[i]!;
    if (!allowed(cp, i, cps)) {
      const c = String.fromCodePoint(cp);
      const what = /\s/u.test(c) ? 'a space' : INVISIBLE.test(c) ? 'an invisible or formatting character' : 'a character';
      return { problem: `the username contains ${what} (${hex(cp)}) that is not allowed in usernames: use letters and digits` };
    }
  }
  const bad = JID_FORBIDDEN.exec(v);
  if (bad) return { problem: `the username contains "${bad[0]}", which is not allowed in an address` };
  if (!bidiRule(cps)) return { problem: 'the username mixes right-to-left and left-to-right text in a way that can display misleadingly (RFC 5893 Bidi Rule)' };
  return v;
}

// ---- RFC 8264 §8 derived property, IdentifierClass: PVALID, or CONTEXTJ/CONTEXTO whose rule holds ----

/** Fullwidth and halfwidth forms (decomposition type <wide>/<narrow>). */
const WIDTH = /[\u3000\uff01-\uffee]/gu;
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cc}]/u;
// RFC 5892 §2.6 exceptions.
const EXC_PVALID = new Set([0x00df, 0x03c2, 0x06fd, 0x06fe, 0x0f0b, 0x3007]);
const EXC_DISALLOWED = new Set([0x0640, 0x07fa, 0x302e, 0x302f, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303b]);
const isArabicIndic = (cp: number): boolean => cp >= 0x0660 && cp <= 0x0669;
const isExtArabicIndic = (cp: number): boolean => cp >= 0x06f0 && cp <= 0x06f9;
/** Hangul_Syllable_Type L, V or T (conjoining jamo): OldHangulJamo. */
const isOldJamo = (cp: number): boolean => (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97c) || (cp >= 0xd7b0 && cp <= 0xd7c6) || (cp >= 0xd7cb && cp <= 0xd7fb);
const UNASSIGNED = /^\p{Cn}$/u;
const IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}\p{Cc}]$/u;
const LETTER_DIGIT = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
/** Canonical_Combining_Class=Virama (9), for the ZWJ/ZWNJ rule (JS regexes have no ccc property). */
const VIRAMA = /^[\u{94D}\u{9CD}\u{A4D}\u{ACD}\u{B4D}\u{BCD}\u{C4D}\u{CCD}\u{D3B}-\u{D3C}\u{D4D}\u{DCA}\u{E3A}\u{EBA}\u{F84}\u{1039}-\u{103A}\u{1714}-\u{1715}\u{1734}\u{17D2}\u{1A60}\u{1B44}\u{1BAA}-\u{1BAB}\u{1BF2}-\u{1BF3}\u{2D7F}\u{A806}\u{A82C}\u{A8C4}\u{A953}\u{A9C0}\u{AAF6}\u{ABED}\u{10A3F}\u{11046}\u{11070}\u{1107F}\u{110B9}\u{11133}-\u{11134}\u{111C0}\u{11235}\u{112EA}\u{1134D}\u{11442}\u{114C2}\u{115BF}\u{1163F}\u{116B6}\u{1172B}\u{11839}\u{1193D}-\u{1193E}\u{119E0}\u{11A34}\u{11A47}\u{11A99}\u{11C3F}\u{11D44}-\u{11D45}\u{11D97}]$/u;
const script = (re: RegExp) => (cp: number | undefined): boolean => cp !== undefined && re.test(String.fromCodePoint(cp));
const isGreek = script(/^\p{Script=Greek}$/u);
const isHebrew = script(/^\p{Script=Hebrew}$/u);
const isKanaHan = script(/^[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]$/u);

function allowed(cp: number, i: number, cps: number[]): boolean {
  if (EXC_PVALID.has(cp)) return true;
  if (EXC_DISALLOWED.has(cp)) return false;
  // CONTEXTO exceptions (RFC 5892 Appendix A.3-A.9).
  if (cp === 0x00b7) return cps[i - 1] === 0x6c && cps[i + 1] === 0x6c; // Catalan l·l
  if (cp === 0x0375) return isGreek(cps[i + 1]);
  if (cp === 0x05f3 || cp === 0x05f4) return isHebrew(cps[i - 1]);
  if (cp === 0x30fb) return cps.some((c) => c !== 0x30fb && isKanaHan(c));
  if (isArabicIndic(cp)) return !cps.some(isExtArabicIndic);
  if (isExtArabicIndic(cp)) return !cps.some(isArabicIndic);
  const c = String.fromCodePoint(cp);
  if (UNASSIGNED.test(c) && !/^\p{Noncharacter_Code_Point}$/u.test(c)) return false;
  if (cp >= 0x21 && cp <= 0x7e) return true;
  // CONTEXTJ (A.1, A.2): a joiner only right after a virama. (ZWNJ's second, joining-type rule
  // needs Unicode data JS lacks: refused, which is stricter than RFC 5892, never looser.)
  if (cp === 0x200c || cp === 0x200d) return i > 0 && VIRAMA.test(String.fromCodePoint(cps[i - 1]!));
  if (isOldJamo(cp)) return false;
  if (IGNORABLE.test(c)) return false;
  if (c.normalize('NFKC') !== c) return false; // HasCompat: ID_DIS
  return LETTER_DIGIT.test(c); // Lt, Nl, No, Me, spaces, symbols, punctuation, other: ID_DIS or DISALLOWED
}

// ---- RFC 5893 Bidi Rule, for strings with right-to-left code points (RFC 8265 §3.3.3) ----
// Bidi classes of the code points allowed above (JS regexes have no Bidi_Class): RTL scripts live
// in these blocks (R or AL); Arabic-Indic and Hanifi Rohingya digits are AN; ASCII and extended
// Arabic-Indic digits EN; nonspacing marks NSM (but five that are L); ASCII punctuation is
// neutral (ES, CS, ET or ON: the rule treats them alike); joiners BN; the rest L.
type Bidi = 'L' | 'R' | 'AN' | 'EN' | 'NSM' | 'ON' | 'BN';
const RTL_BLOCKS: [number, number][] = [[0x0590, 0x08ff], [0xfb1d, 0xfdff], [0xfe70, 0xfeff], [0x10800, 0x10fff], [0x1e800, 0x1efff]];
const MN_L = new Set([0x0cbf, 0x0cc6, 0x11a07, 0x11a08, 0x11c3f]);
const NSM = /^\p{Mn}$/u;

function bidiClass(cp: number): Bidi {
  if ((cp >= 0x30 && cp <= 0x39) || isExtArabicIndic(cp)) return 'EN';
  if (isArabicIndic(cp) || (cp >= 0x10d30 && cp <= 0x10d39)) return 'AN';
  if (cp === 0x200c || cp === 0x200d) return 'BN';
  if (cp < 0x80) return /[a-z]/i.test(String.fromCharCode(cp)) ? 'L' : 'ON';
  if (!MN_L.has(cp) && NSM.test(String.fromCodePoint(cp))) return 'NSM';
  if (RTL_BLOCKS.some(([a, b]) => cp >= a && cp <= b)) return 'R';
  return 'L';
}

function bidiRule(cps: number[]): boolean {
  const classes = cps.map(bidiClass);
  if (!classes.some((b) => b === 'R' || b === 'AN')) return true; // no right-to-left code points
  if (classes[0] !== 'R') return false; // 1 (and 5: an L-first string may not hold R or AN)
  if (classes.some((b) => b === 'L')) return false; // 2
  let end = classes.length - 1;
  while (end > 0 && classes[end] === 'NSM') end--;
  if (!['R', 'EN', 'AN'].includes(classes[end]!)) return false; // 3
  return !(classes.includes('EN') && classes.includes('AN')); // 4
}

/** Scripts whose letters look alike (UTS #39): a username may not mix them ("аlice" with a Cyrillic а). */
const CONFUSABLE_SCRIPTS: [string, RegExp][] = [['Latin', /\p{Script=Latin}/u], ['Greek', /\p{Script=Greek}/u], ['Cyrillic', /\p{Script=Cyrillic}/u]];

/** Local policy for new accounts, on top of PRECIS: no mixing of Latin, Greek and Cyrillic letters.
 * Returns the problem, or undefined. (Not applied at login or to JIDs, so no existing name breaks.) */
export function newUsernameProblem(prepared: string): string | undefined {
  const used = CONFUSABLE_SCRIPTS.filter(([, re]) => re.test(prepared)).map(([name]) => name);
  return used.length > 1 ? `the username mixes ${used.join(' and ')} letters, which can look like another name: use one alphabet` : undefined;
}

export function prepDomain(s: string): string | undefined {
  let v = s.normalize('NFC').toLowerCase();
  if (v.endsWith('.')) v = v.slice(0, -1);
  if (v.length === 0 || Buffer.byteLength(v) > 1023 || /[\s/@"<>&'\u0000-\u001f]/.test(v)) return undefined;
  return v;
}

export function prepResource(s: string): string | undefined {
  const v = s.normalize('NFC');
  if (v.length === 0 || Buffer.byteLength(v) > 1023 || CONTROL.test(v)) return undefined;
  return v;
}

/** Parses and prepares a JID; undefined when it is not valid. */
export function parseJid(s: string): Jid | undefined {
  const slash = s.indexOf('/');
  const head = slash >= 0 ? s.slice(0, slash) : s;
  const resRaw = slash >= 0 ? s.slice(slash + 1) : '';
  const at = head.indexOf('@');
  const localRaw = at >= 0 ? head.slice(0, at) : '';
  const domainRaw = at >= 0 ? head.slice(at + 1) : head;
  if (at >= 0 && localRaw === '') return undefined;
  if (slash >= 0 && resRaw === '') return undefined;
  const local = localRaw ? prepLocal(localRaw) : '';
  const domain = prepDomain(domainRaw);
  const resource = resRaw ? prepResource(resRaw) : '';
  if (local === undefined || domain === undefined || resource === undefined) return undefined;
  return new Jid(local, domain, resource);
}
