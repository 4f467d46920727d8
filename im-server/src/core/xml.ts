// A small XML element tree: enough for stanzas, cheap to build and to serialise.
// Attributes hold plain names; the namespace of an element is its `xmlns` attribute,
// present on every element whose namespace differs from its parent's.

export type Child = Element | string;

export class Element {
  name: string;
  attrs: Record<string, string>;
  children: Child[];
  parent: Element | undefined;

  constructor(name: string, attrs?: Record<string, string | undefined>, ...children: (Child | undefined | null | false)[]) {
    this.name = name;
    this.attrs = {};
    if (attrs) for (const k in attrs) { const v = attrs[k]; if (v !== undefined) this.attrs[k] = v; }
    this.children = [];
    this.parent = undefined;
    for (const c of children) if (c !== undefined && c !== null && c !== false) this.append(c);
  }

  get ns(): string {
    let el: Element | undefined = this;
    while (el) { const ns = el.attrs.xmlns; if (ns !== undefined) return ns; el = el.parent; }
    return '';
  }

  append(child: Child): this {
    if (typeof child !== 'string') child.parent = this;
    this.children.push(child);
    return this;
  }

  is(name: string, ns?: string): boolean {
    return this.name === name && (ns === undefined || this.ns === ns);
  }

  getChild(name: string, ns?: string): Element | undefined {
    for (const c of this.children) if (typeof c !== 'string' && c.name === name && (ns === undefined || c.ns === ns)) return c;
    return undefined;
  }

  getChildren(name: string, ns?: string): Element[] {
    const out: Element[] = [];
    for (const c of this.children) if (typeof c !== 'string' && c.name === name && (ns === undefined || c.ns === ns)) out.push(c);
    return out;
  }

  /** The first child element, whatever its name. */
  firstElement(): Element | undefined {
    for (const c of this.children) if (typeof c !== 'string') return c;
    return undefined;
  }

  elements(): Element[] {
    return this.children.filter((c): c is Element => typeof c !== 'string');
  }

  text(): string {
    let s = '';
    for (const c of this.children) if (typeof c === 'string') s += c;
    return s;
  }

  getChildText(name: string, ns?: string): string | undefined {
    return this.getChild(name, ns)?.text();
  }

  /** A shallow-attribute copy of the tree (children are deep-copied). */
  clone(): Element {
    const el = new Element(this.name, { ...this.attrs });
    for (const c of this.children) el.append(typeof c === 'string' ? c : c.clone());
    return el;
  }

  toString(): string {
    return serialize(this);
  }
}

export function xml(name: string, attrs?: Record<string, string | undefined>, ...children: (Child | undefined | null | false)[]): Element {
  return new Element(name, attrs, ...children);
}

const HAS_TEXT = /[&<>]/;
const HAS_ATTR = /[&<>"']/;
const ESC_TEXT = /[&<>]/g;
const ESC_ATTR = /[&<>"']/g;
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
const replaceEntity = (c: string): string => ENTITIES[c]!;

export function escapeText(s: string): string {
  return HAS_TEXT.test(s) ? s.replace(ESC_TEXT, replaceEntity) : s;
}
export function escapeAttr(s: string): string {
  return HAS_ATTR.test(s) ? s.replace(ESC_ATTR, replaceEntity) : s;
}

function serialize(el: Element): string {
  let s = '<' + el.name;
  for (const k in el.attrs) s += ' ' + k + '="' + escapeAttr(el.attrs[k]!) + '"';
  if (el.children.length === 0) return s + '/>';
  s += '>';
  for (const c of el.children) s += typeof c === 'string' ? escapeText(c) : serialize(c);
  return s + '</' + el.name + '>';
}
