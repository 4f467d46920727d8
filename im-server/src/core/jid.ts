// JIDs (RFC 7622), prepared the way PRECIS does for the common case: NFC (NFKC for the
// localpart), case-folded localpart and domain, forbidden characters rejected.

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

const LOCAL_FORBIDDEN = /["&'/:<>@\s\u0000-\u001f\u007f]/;
const CONTROL = /[\u0000-\u001f\u007f]/;

export function prepLocal(s: string): string | undefined {
  const v = s.normalize('NFKC').toLowerCase();
  if (v.length === 0 || Buffer.byteLength(v) > 1023 || LOCAL_FORBIDDEN.test(v)) return undefined;
  return v;
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
