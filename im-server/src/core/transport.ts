// The seam between a transport (TCP, WebSocket) and the XML stream on it. A transport owns its
// framing and its input limits (bytes, depth, attributes, whitespace between stanzas, UTF-8):
// the stream only ever sees a validated stream opening, whole elements, the close, or an error.
import type { Element } from './xml.js';

/** What a transport delivers (streams.ts forwards it to whichever stream owns the connection). */
export interface StreamInput {
  /** Bytes arrived (before parsing): the connection is alive. */
  received(): void;
  /** The client opened a stream: TCP <stream:stream> (root and namespaces checked), WebSocket <open/>. */
  streamOpened(attrs: Record<string, string>): void;
  /** A top-level element other than the framing's own. */
  element(el: Element): void;
  /** The client closed its stream (</stream:stream>, <close/>). */
  streamClosed(): void;
  /** The input broke a rule of the framing: the stream ends with this stream error. */
  streamError(condition: string, text?: string): void;
  /** Whitespace between stanzas: legal, but it counts against the stanza rate. */
  keepalive(): void;
  /** Handling the input threw: a bug, which must cost this connection only. */
  crashed(err: unknown): void;
  /** The connection is gone. */
  disconnected(): void;
}

export interface Transport {
  readonly kind: 'tcp' | 'ws';
  /** The client's address (from the PROXY protocol or X-Forwarded-For when behind a trusted proxy). */
  readonly address: string;
  /** Encrypted, or from a trusted proxy that terminated TLS. */
  readonly secure: boolean;
  /** Where input goes; set once by the stream set. */
  attach(input: StreamInput): void;
  /** The server's stream header (<stream:stream ...>, or <open/> on WebSocket). */
  header(id: string, from: string): string;
  /** Ends the stream (</stream:stream>, or <close/>). */
  readonly footer: string;
  /** Declares the stream: prefix on stream-level elements where no root element does (WebSocket). */
  readonly streamNs: string;
  /** `written` runs once the data was handed to the socket (not if the connection failed first). */
  write(data: string, written?: () => void): void;
  buffered(): number;
  /** After SASL success: the next bytes start a new stream (a client must send nothing more before <success/>). */
  restart(): void;
  /** Parse nothing more until release(): an asynchronous SASL step decides whether what the
   * client sends meanwhile belongs to this stream or to the one its <success/> starts. */
  hold(): void;
  release(): void;
  /** TCP only: TLS from the next byte on (after <proceed/>); what followed <starttls/> in plain text is dropped. */
  startTls?(): void;
  /** Ends the connection after pending writes. */
  end(): void;
}
