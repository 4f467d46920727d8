/**
 * A deliberately small XML element: names, attributes, children. Stanzas are built as strings
 * (see `escape`) and parsed into these only on receipt, so a connection holds no tree while idle.
 */
export class XmlElement {
  children: Array<XmlElement | string> = [];
  constructor(
    public name: string,
    public attrs: Record<string, string>,
  ) {}

  /** Local name without a prefix (`stream:features` -> `features`). */
  get local(): string {
    const i = this.name.indexOf(':');
    return i < 0 ? this.name : this.name.slice(i + 1);
  }

  child(name: string, xmlns?: string): XmlElement | undefined {
    for (const c of this.children) {
      if (typeof c !== 'string' && (c.name === name || c.local === name) && (xmlns === undefined || c.attrs.xmlns === xmlns)) return c;
    }
    return undefined;
  }

  elements(): XmlElement[] {
    return this.children.filter((c): c is XmlElement => typeof c !== 'string');
  }

  text(): string {
    let s = '';
    for (const c of this.children) if (typeof c === 'string') s += c;
    return s;
  }

  /** Serialise (used for diagnostics and tests, not on the hot path). */
  toString(): string {
    let s = `<${this.name}`;
    for (const [k, v] of Object.entries(this.attrs)) s += ` ${k}="${escape(v)}"`;
    if (this.children.length === 0) return s + '/>';
    s += '>';
    for (const c of this.children) s += typeof c === 'string' ? escape(c) : c.toString();
    return s + `</${this.name}>`;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

export function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]!);
}

/** `attrs({to: 'a', id: undefined})` -> ` to="a"`; undefined values are left out. */
export function attrs(a: Record<string, string | number | undefined>): string {
  let s = '';
  for (const k in a) {
    const v = a[k];
    if (v !== undefined) s += ` ${k}="${escape(String(v))}"`;
  }
  return s;
}
