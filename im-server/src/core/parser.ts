// Streaming XML parser for XMPP streams, on saxes. No DTDs, no entity expansion beyond the
// five predefined ones, no comments or processing instructions (RFC 6120 §11.1). Emits whole
// top-level elements (stanzas and nonzas).
//
// Work is bounded by the input: the input is fed in small slices, every limit is checked after
// each slice and inside saxes' callbacks, and the moment one fires the parser stops (a throw
// unwinds saxes mid-slice), so no later byte is looked at. With depth capped, saxes' per-tag
// namespace lookup is bounded too, so N bytes cost O(N). Sizes are UTF-8 bytes and count all
// of a stanza, its start tag and whatever came before it since the previous stanza ended.
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { Element, escapeAttr } from './xml.js';

export type ParserCondition = 'not-well-formed' | 'restricted-xml' | 'policy-violation';

export interface ParserHandler {
  /** The stream root opened (TCP: <stream:stream>). Not called in framed (WebSocket) mode. */
  streamStart(name: string, ns: string, attrs: Record<string, string>): void;
  element(el: Element): void;
  streamEnd(): void;
  error(condition: ParserCondition, text: string): void;
  /** Whitespace between stanzas (a keep-alive), which the parser dropped. */
  keepalive?(): void;
  /** True while the connection holds its input (an asynchronous SASL step): asked after each
   * element, the parser then parses nothing past that element until resume(). */
  held?(): boolean;
}

export interface ParserLimits {
  /** Bytes of one top-level element, with its start tag and what preceded it since the last one. */
  maxStanzaSize: number;
  maxDepth: number;
  /** Attributes (namespace declarations included) on one element. */
  maxAttributes: number;
  /** Bytes of whitespace in one keep-alive; more is not a keep-alive but a flood. */
  maxKeepaliveBytes: number;
}

const WS_ROOT = '<framing xmlns="jabber:client">';
/** Slices small enough that the work between two limit checks stays small. */
const SLICE = 8192;
const WHITESPACE = /^[ \t\r\n]*$/;
const NOT_WHITESPACE = /[^ \t\r\n]/;

/** Thrown inside saxes' callbacks to stop it in the middle of a slice. */
const STOP = Symbol('stop');

type Sax = SaxesParser<{ xmlns: true; position: true }>;

export class StreamParser {
  private sax!: Sax;
  private depth = 0;
  private current: Element | undefined;
  private failed = false;
  // Byte accounting, in positions of saxes' input (UTF-16 code units):
  /** Where the slice being parsed starts, and the slice (saxes' position is only valid inside its callbacks). */
  private sliceStart = 0;
  private fed = 0;
  private slice = '';
  /** Bytes since the last top-level boundary (stream start, or the end of a top-level element). */
  private pending = 0;
  /** Position up to which `pending` has counted. */
  private counted = 0;
  /** Everything since the last boundary was whitespace. */
  private pendingBlank = true;
  /** A top-level element whose end tag saxes has read but not yet checked against its start tag,
   * and the position just after that end tag. */
  private ready: Element | undefined;
  private readyEnd = 0;
  /** Input after the element just handed out is not for this saxes (held, or the stream restarts):
   * parsing stops at `cutAt` and what follows is kept as backlog. */
  private cutAt = -1;
  private emitting = false;
  private restartPending = false;
  /** The stream root as the client opened it (its namespace declarations), to continue after a
   * cut; while it is written to a fresh saxes, its start tag is no news. */
  private root = '';
  private priming = false;
  /** Top-level elements handed out so far, and input not parsed yet (see write()). */
  private emitted = 0;
  private backlog = '';
  /** Elements one write() or resume() may hand out before it yields. */
  yieldAfter = Number.MAX_SAFE_INTEGER;

  /** framed: one or more whole elements per write (a WebSocket message, RFC 7395), under a synthetic root. */
  constructor(private readonly handler: ParserHandler, private readonly limits: ParserLimits, private readonly framed = false) {
    if (framed) this.root = WS_ROOT;
    this.reset(framed ? WS_ROOT : '');
  }

  /** A fresh saxes at a stanza boundary: inside `root` (already open), or before any root. */
  private reset(root: string): void {
    const sax: Sax = new SaxesParser({ xmlns: true, position: true });
    this.sax = sax;
    sax.on('opentag', (tag) => this.open(tag));
    sax.on('closetag', () => this.close());
    sax.on('text', (t) => this.text(t));
    sax.on('cdata', (t) => this.text(t));
    sax.on('error', (e) => this.error(e.message.split('\n')[0] ?? 'XML error'));
    sax.on('doctype', () => this.fail('restricted-xml', 'DTDs are not allowed'));
    sax.on('comment', () => this.fail('restricted-xml', 'comments are not allowed'));
    sax.on('processinginstruction', () => this.fail('restricted-xml', 'processing instructions are not allowed'));
    this.depth = 0;
    this.current = undefined;
    this.ready = undefined;
    this.fed = 0;
    if (root) { this.priming = true; sax.write(root); this.priming = false; this.fed = root.length; }
    this.sliceStart = this.counted = this.fed;
    this.slice = '';
    this.pending = 0;
    this.pendingBlank = true;
  }

  /** The stream restarts (RFC 6120 §4.3.3: after STARTTLS or SASL success) right after the
   * element being handled, or now when none is: what the client sent after that element, even
   * in the same read, is parsed as the start of the new stream. */
  restart(): void {
    if (this.failed) return;
    if (this.emitting) { this.restartPending = true; return; }
    this.root = this.framed ? WS_ROOT : '';
    this.reset(this.root);
  }

  /** The parser failed or was stopped: it ignores all further input. */
  get stopped(): boolean {
    return this.failed;
  }

  /** Stops for good, silently (e.g. after <starttls/>: nothing after it in plain text counts). */
  stop(): void {
    this.failed = true;
    this.current = undefined;
    this.backlog = '';
  }

  /** Parses `chunk`. After `yieldAfter` top-level elements it stops at a slice boundary and keeps
   * the rest (`backlog`) for resume(), so that one client's burst cannot hold the event loop. */
  write(chunk: string): void {
    if (this.failed) return;
    if (this.backlog) { this.backlog += chunk; return; }
    // A keep-alive: whitespace while no stanza is under way. Not buffered at all.
    if (this.depth <= 1 && this.pendingBlank && WHITESPACE.test(chunk)) {
      if (Buffer.byteLength(chunk) > this.limits.maxKeepaliveBytes) return this.failQuietly('policy-violation', `more than ${this.limits.maxKeepaliveBytes} bytes of whitespace between stanzas`);
      this.handler.keepalive?.();
      return;
    }
    this.run(chunk);
  }

  /** Input written but not parsed yet (the parser yielded). */
  get backlogged(): boolean {
    return this.backlog.length > 0 && !this.failed;
  }

  /** Parses (part of) the backlog. */
  resume(): void {
    const b = this.backlog;
    this.backlog = '';
    if (b && !this.failed) this.run(b);
  }

  private run(chunk: string): void {
    const start = this.emitted;
    let i = 0;
    try {
      for (; i < chunk.length && !this.failed; i += SLICE) {
        if (this.emitted - start >= this.yieldAfter) { this.backlog = chunk.slice(i); return; }
        this.writeSlice(i === 0 && chunk.length <= SLICE ? chunk : chunk.slice(i, i + SLICE));
      }
    } catch (e) {
      if (e !== STOP) throw e;
      if (this.cutAt >= 0) this.cut(chunk.slice(i + this.slice.length));
    }
  }

  /** Parsing stopped right after an element (see flush): the rest waits in the backlog for a
   * fresh saxes, inside the same stream root or, on a restart, before a new one. */
  private cut(after: string): void {
    const rest = this.slice.slice(this.cutAt - this.sliceStart) + after;
    this.cutAt = -1;
    if (this.failed) return; // stopped (STARTTLS, a stream error): nothing after it counts
    if (this.restartPending) { this.restartPending = false; this.root = this.framed ? WS_ROOT : ''; }
    this.reset(this.root);
    this.backlog = rest + this.backlog;
  }

  /** WebSocket: the message just written must have left no element open (RFC 7395 §3.3.3). */
  endOfMessage(): void {
    if (this.failed) return;
    if (this.depth > 1) return this.failQuietly('not-well-formed', 'a WebSocket message must hold whole XML elements (RFC 7395): an element was left open');
    if (!this.pendingBlank) this.failQuietly('not-well-formed', 'a WebSocket message must hold whole XML elements (RFC 7395): text outside of any stanza, or a partial tag');
  }

  private writeSlice(s: string): void {
    this.slice = s;
    this.sliceStart = this.fed;
    this.fed += s.length;
    this.sax.write(s);
    this.flush();
    const end = this.fed;
    const tail = s.slice(Math.max(0, this.counted - this.sliceStart));
    this.pending += Buffer.byteLength(tail);
    if (this.pendingBlank && NOT_WHITESPACE.test(tail)) this.pendingBlank = false;
    this.counted = end;
    if (this.pending > this.limits.maxStanzaSize) this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
  }

  /** Counts the bytes up to the current position and starts counting anew. Returns what was counted. */
  private boundary(): number {
    const at = this.sax.position;
    const bytes = this.pending + Buffer.byteLength(this.slice.slice(Math.max(0, this.counted - this.sliceStart), Math.max(0, at - this.sliceStart)));
    this.pending = 0;
    this.counted = at;
    this.pendingBlank = true;
    return bytes;
  }

  /** saxes calls closetag before it compares the end tag's name (<message></iq> would be
   * delivered, then refused): a top-level element goes out at the next event instead. */
  private flush(): void {
    const el = this.ready;
    if (!el) return;
    this.ready = undefined;
    this.emitted++;
    this.emitting = true;
    try {
      this.handler.element(el);
    } finally {
      this.emitting = false;
    }
    // The handler stopped us (STARTTLS, a stream error), restarted the stream (SASL success) or
    // holds the input (a SASL step under way): saxes may have read past the element; that input
    // is parsed again later, by whichever stream it belongs to.
    if (this.failed || this.restartPending || this.handler.held?.()) {
      this.cutAt = this.readyEnd;
      throw STOP;
    }
  }

  private failQuietly(condition: ParserCondition, text: string): void {
    this.ready = undefined;
    this.cutAt = -1;
    if (this.failed) return;
    this.stop();
    this.handler.error(condition, text);
  }

  /** Reports the error and unwinds saxes (only call while parsing a slice). */
  private fail(condition: ParserCondition, text: string): never {
    this.failQuietly(condition, text);
    throw STOP;
  }

  /** saxes reports a mismatched end tag right after its closetag, at the same position: then the
   * element just closed is not well-formed and is dropped. Any later error comes after a whole,
   * checked element, which is handed out first (it may be the <auth/> that restarts the stream). */
  private error(text: string): void {
    if (this.ready && this.sax.position !== this.readyEnd) this.flush();
    this.fail('not-well-formed', text);
  }

  private open(tag: SaxesTagNS): void {
    this.flush();
    if (this.failed) throw STOP;
    this.depth++;
    let count = 0;
    for (const _ in tag.attributes) count++;
    if (count > this.limits.maxAttributes) this.fail('policy-violation', `more than ${this.limits.maxAttributes} attributes on <${tag.name}>`);
    if (this.depth === 1) {
      if (this.priming) return;
      this.boundary();
      if (this.framed) return;
      const attrs: Record<string, string> = {};
      let decls = '';
      for (const k in tag.attributes) {
        const a = tag.attributes[k]!;
        if (a.prefix === 'xmlns' || a.name === 'xmlns') decls += ` ${a.name}="${escapeAttr(a.value)}"`;
        if (a.prefix !== 'xmlns') attrs[a.name] = a.value;
      }
      this.root = `<${tag.name}${decls}>`;
      this.handler.streamStart(tag.local, tag.uri, attrs);
      return;
    }
    if (this.depth - 1 > this.limits.maxDepth) this.fail('policy-violation', `elements nested deeper than ${this.limits.maxDepth}`);
    const parent = this.current;
    const el = new Element(tag.local, undefined);
    if (!parent || tag.uri !== parent.ns) el.attrs.xmlns = tag.uri;
    for (const k in tag.attributes) {
      const a = tag.attributes[k]!;
      if (a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      el.attrs[a.name] = a.value;
      if (a.prefix && a.prefix !== 'xml') el.attrs['xmlns:' + a.prefix] = a.uri;
    }
    if (parent) parent.append(el);
    this.current = el;
  }

  private close(): void {
    this.flush();
    if (this.failed) throw STOP;
    this.depth--;
    if (this.depth === 0) { this.stop(); this.handler.streamEnd(); return; }
    const el = this.current;
    if (!el) return;
    this.current = el.parent;
    if (this.depth === 1) {
      el.parent = undefined;
      if (this.boundary() > this.limits.maxStanzaSize) this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
      this.ready = el;
      this.readyEnd = this.sax.position;
    }
  }

  private text(t: string): void {
    this.flush();
    if (this.failed) throw STOP;
    if (!this.current) {
      // Between stanzas only whitespace may appear (keep-alives).
      if (NOT_WHITESPACE.test(t)) this.fail('not-well-formed', 'text outside of any stanza');
      return;
    }
    this.current.append(t);
  }
}

/** Parses one element from a string we serialised ourselves (e.g. read back from storage). */
export function parseElement(text: string): Element | undefined {
  let out: Element | undefined;
  const p = new StreamParser({ streamStart() {}, element(el) { out ??= el; }, streamEnd() {}, error() {} },
    { maxStanzaSize: Number.MAX_SAFE_INTEGER, maxDepth: 1000, maxAttributes: Number.MAX_SAFE_INTEGER, maxKeepaliveBytes: Number.MAX_SAFE_INTEGER }, true);
  p.write(text);
  return out;
}
