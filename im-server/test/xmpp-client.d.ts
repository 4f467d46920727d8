// Types for the parts of @xmpp/client (ships without typings) that the tests use.
declare module '@xmpp/client' {
  export interface Element {
    name: string;
    attrs: Record<string, string | undefined>;
    children: (Element | string)[];
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    text(): string;
    toString(): string;
  }
  export interface Client {
    jid: { toString(): string; local: string; resource: string } | null;
    status: string;
    start(): Promise<unknown>;
    stop(): Promise<void>;
    send(...el: Element[]): Promise<void>;
    /** Writes raw text to the transport (bad input on purpose). */
    write(s: string): Promise<void>;
    on(ev: string, fn: (...a: any[]) => void): this;
    off(ev: string, fn: (...a: any[]) => void): this;
    once(ev: string, fn: (...a: any[]) => void): this;
    iqCaller: { request(el: Element, timeout?: number): Promise<Element>; get(el: Element, to?: string, timeout?: number): Promise<Element>; set(el: Element, to?: string, timeout?: number): Promise<Element> };
    reconnect: { stop(): void };
    streamManagement: { enabled: boolean; requestAckInterval: number; outbound: number; outbound_q: unknown[]; on(ev: string, fn: (s: Element) => void): void; off(ev: string, fn: (s: Element) => void): void };
  }
  export function client(opts: Record<string, unknown>): Client;
  export function xml(name: string, attrs?: Record<string, string | undefined> | null, ...children: (Element | string | undefined)[]): Element;
  export function jid(s: string): { toString(): string };
}
