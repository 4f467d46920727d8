import { SaxesParser, type SaxesTagPlain } from 'saxes';
import { XmlElement } from './xml.js';

export interface StreamHandlers {
  streamOpen(attrs: Record<string, string>): void;
  element(el: XmlElement): void;
  streamClose(): void;
  error(err: Error): void;
}

/** Elements larger than this (in characters) end the stream: a load client must not buffer without bound. */
const MAX_STANZA_CHARS = 1024 * 1024;

/**
 * Streaming parser for one XML stream. Depth 0 is the stream root (`<stream:stream>` on TCP, a
 * synthetic root on WebSocket); every complete depth-1 element is handed over as an XmlElement.
 * saxes runs without namespace processing: XMPP clients only need the `xmlns` attribute of the
 * element that declares it, and skipping namespace bookkeeping keeps 10,000 parsers cheap.
 */
export class StreamParser {
  private sax: SaxesParser;
  private stack: XmlElement[] = [];
  private size = 0;
  private failed = false;
  private root = false;

  constructor(private h: StreamHandlers) {
    this.sax = this.make();
  }

  private make(): SaxesParser {
    const sax = new SaxesParser({ xmlns: false, fragment: false });
    sax.on('opentag', (t: SaxesTagPlain) => {
      const depth = this.stack.length;
      if (depth === 0 && this.root === false) {
        this.root = true;
        this.h.streamOpen(t.attributes as Record<string, string>);
        return;
      }
      const el = new XmlElement(t.name, t.attributes as Record<string, string>);
      const parent = this.stack[depth - 1];
      if (parent) parent.children.push(el);
      this.stack.push(el);
    });
    sax.on('text', (text: string) => {
      const top = this.stack[this.stack.length - 1];
      if (!top) return; // whitespace keepalives between stanzas
      this.size += text.length;
      if (this.size > MAX_STANZA_CHARS) return this.fail(new Error('stanza larger than 1 MiB'));
      top.children.push(text);
    });
    sax.on('closetag', () => {
      const el = this.stack.pop();
      if (!el) {
        this.h.streamClose();
        return;
      }
      if (this.stack.length === 0) {
        this.size = 0;
        this.h.element(el);
      }
    });
    sax.on('error', (e: Error) => this.fail(e));
    return sax;
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.h.error(e);
  }

  write(chunk: string): void {
    if (this.failed) return;
    try {
      this.sax.write(chunk);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /** A stream restart (after STARTTLS and SASL) begins a new XML document. */
  reset(): void {
    this.sax = this.make();
    this.stack = [];
    this.root = false;
    this.size = 0;
    this.failed = false;
  }
}
