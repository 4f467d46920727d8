// Streaming XML parser for XMPP streams, on saxes. No DTDs, no entity expansion beyond the
// five predefined ones, no comments or processing instructions (RFC 6120 §11.1), bounded
// stanza size and nesting depth. Emits whole top-level elements (stanzas and nonzas).
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { Element } from './xml.js';

export interface ParserHandler {
  /** The stream root opened (TCP: <stream:stream>). Not called in framed (WebSocket) mode. */
  streamStart(name: string, ns: string, attrs: Record<string, string>): void;
  element(el: Element): void;
  streamEnd(): void;
  error(condition: 'not-well-formed' | 'restricted-xml' | 'policy-violation', text: string): void;
}

export interface ParserLimits {
  maxStanzaSize: number;
  maxDepth: number;
}

const WS_ROOT = '<framing xmlns="jabber:client">';

export class StreamParser {
  private readonly sax: SaxesParser<{ xmlns: true; position: true }>;
  private depth = 0;
  private current: Element | undefined;
  private stanzaStart = 0;
  private failed = false;
  private framedRoot = false;

  /** framed: one element per WebSocket message (RFC 7395), parsed under a synthetic root. */
  constructor(private readonly handler: ParserHandler, private readonly limits: ParserLimits, framed = false) {
    const sax = new SaxesParser({ xmlns: true, position: true });
    this.sax = sax;
    sax.on('opentag', (tag) => this.open(tag));
    sax.on('closetag', () => this.close());
    sax.on('text', (t) => this.text(t));
    sax.on('cdata', (t) => this.text(t));
    sax.on('error', (e) => this.fail('not-well-formed', e.message.split('\n')[0] ?? 'XML error'));
    sax.on('doctype', () => this.fail('restricted-xml', 'DTDs are not allowed'));
    sax.on('comment', () => this.fail('restricted-xml', 'comments are not allowed'));
    sax.on('processinginstruction', () => this.fail('restricted-xml', 'processing instructions are not allowed'));
    if (framed) { this.framedRoot = true; sax.write(WS_ROOT); }
  }

  write(chunk: string): void {
    if (this.failed) return;
    this.sax.write(chunk);
    if (!this.failed && this.depth > 1 && this.sax.position - this.stanzaStart > this.limits.maxStanzaSize) {
      this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
    }
  }

  private fail(condition: 'not-well-formed' | 'restricted-xml' | 'policy-violation', text: string): void {
    if (this.failed) return;
    this.failed = true;
    this.current = undefined;
    this.handler.error(condition, text);
  }

  private open(tag: SaxesTagNS): void {
    if (this.failed) return;
    this.depth++;
    if (this.depth === 1) {
      if (this.framedRoot) return;
      const attrs: Record<string, string> = {};
      for (const k in tag.attributes) { const a = tag.attributes[k]!; if (a.prefix !== 'xmlns') attrs[a.name] = a.value; }
      this.handler.streamStart(tag.local, tag.uri, attrs);
      return;
    }
    if (this.depth - 1 > this.limits.maxDepth) return this.fail('policy-violation', `elements nested deeper than ${this.limits.maxDepth}`);
    const parent = this.current;
    const attrs: Record<string, string> = {};
    let extraNs: Record<string, string> | undefined;
    for (const k in tag.attributes) {
      const a = tag.attributes[k]!;
      if (a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      attrs[a.name] = a.value;
      if (a.prefix && a.prefix !== 'xml') (extraNs ??= {})['xmlns:' + a.prefix] = a.uri;
    }
    if (extraNs) Object.assign(attrs, extraNs);
    const el = new Element(tag.local, undefined);
    const parentNs = parent ? parent.ns : '';
    if (!parent || tag.uri !== parentNs) el.attrs.xmlns = tag.uri;
    Object.assign(el.attrs, attrs);
    if (parent) parent.append(el);
    else this.stanzaStart = this.sax.position;
    this.current = el;
    if (this.sax.position - this.stanzaStart > this.limits.maxStanzaSize) this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
  }

  private close(): void {
    if (this.failed) return;
    this.depth--;
    if (this.depth === 0) { this.handler.streamEnd(); return; }
    const el = this.current;
    if (!el) return;
    this.current = el.parent;
    if (this.depth === 1) {
      el.parent = undefined;
      this.stanzaStart = this.sax.position;
      this.handler.element(el);
    }
  }

  private text(t: string): void {
    if (this.failed || !this.current) return;
    if (this.sax.position - this.stanzaStart > this.limits.maxStanzaSize) return this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
    this.current.append(t);
  }
}

/** Parses one element from a string we serialised ourselves (e.g. read back from storage). */
export function parseElement(text: string): Element | undefined {
  let out: Element | undefined;
  const p = new StreamParser({ streamStart() {}, element(el) { out ??= el; }, streamEnd() {}, error() {} },
    { maxStanzaSize: Number.MAX_SAFE_INTEGER, maxDepth: 1000 }, true);
  p.write(text);
  return out;
}
