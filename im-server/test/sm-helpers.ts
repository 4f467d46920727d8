// Raw-socket helpers for XEP-0198 resumption tests: exact h values and the exact stanzas resent
// are what is checked, which client libraries hide.
import { WebSocket } from 'ws';
import { rawLogin, rawScramSha256, rawSecure, streamHeader, waitForData, type RawConn, type TestServer } from './helpers.js';

export const SM = 'urn:xmpp:sm:3';

/** Stanzas (top-level message/presence/iq) in raw stream data. */
export const stanzaCount = (data: string): number => (data.match(/<(message|presence|iq)[\s>/]/g) ?? []).length;

/** Message bodies in raw stream data, in order. */
export const bodiesIn = (data: string): string[] => [...data.matchAll(/<body>([^<]*)<\/body>/g)].map((m) => m[1]!);

/** Raw login with resumable SM, initial presence, and a ping round trip; `data` is reset after <enabled/>. */
export async function resumableLogin(port: number, user: string, resource: string): Promise<{ c: RawConn; id: string }> {
  const c = await rawLogin(port, user, 'pw', resource);
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  const got = await c.until(/<enabled[^>]*\/>/);
  const id = /<enabled[^>]* id="([^"]+)"/.exec(got)?.[1];
  if (!id || !/resume="true"/.test(got)) throw new Error('no resumable <enabled/>: ' + got);
  c.data = '';
  c.send(`<presence/>`);
  c.send(`<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until(/<iq[^>]*id="sync"/);
  return { c, id };
}

/** A new authenticated stream that sends <resume/>; resolves once <resumed/> or <failed/> arrived. */
export async function rawResume(port: number, user: string, previd: string, h: number): Promise<RawConn> {
  const c = await rawSecure(port);
  if (!(await rawScramSha256(c, user, 'pw'))) throw new Error('login failed: ' + c.data);
  c.data = '';
  c.send(streamHeader);
  await c.until('</stream:features>');
  c.data = '';
  c.send(`<resume xmlns='${SM}' previd='${previd}' h='${h}'/>`);
  await c.until(/<resumed[^>]*\/>|<\/failed>/);
  return c;
}

/** Resolves when the server logs a line containing `text` (every one of them, if several), counting
 * lines from index `since` of server.logs on (take server.logs.length before causing the event). */
export function serverLogged(server: TestServer, text: string | string[], since = 0, ms = 10_000): Promise<void> {
  const texts = typeof text === 'string' ? [text] : text;
  const match = (): boolean => server.logs.slice(since).some((l) => texts.every((x) => l.includes(x)));
  if (match()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { server.proc.stdout!.off('data', on); reject(new Error(`server never logged "${texts.join('" + "')}"`)); }, ms);
    // The harness's own listener (added first) has already split the chunk into server.logs.
    const on = (): void => {
      if (!match()) return;
      clearTimeout(timer);
      server.proc.stdout!.off('data', on);
      resolve();
    };
    server.proc.stdout!.on('data', on);
  });
}

/** A raw XMPP-over-WebSocket stream (RFC 7395), authenticated, at the point where bind or resume can start. */
export async function rawWsAuthenticated(httpPort: number, user: string): Promise<RawConn> {
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/xmpp-websocket`, 'xmpp');
  await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
  const listeners = new Set<() => void>();
  const conn = {
    data: '',
    send(s: string) { ws.send(s); },
    until(what: string | RegExp, ms = 10_000): Promise<string> { return waitForData(() => conn.data, listeners, what, ms); },
    closed: new Promise<void>((r) => ws.once('close', () => r())),
    end() { ws.terminate(); },
  };
  ws.on('message', (d) => { conn.data += d.toString(); for (const l of [...listeners]) l(); });
  const open = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`;
  conn.send(open);
  await conn.until('</stream:features>');
  const c = conn as unknown as RawConn;
  if (!(await rawScramSha256(c, user, 'pw'))) throw new Error('login failed: ' + conn.data);
  conn.data = '';
  conn.send(open);
  await conn.until('</stream:features>');
  conn.data = '';
  return c;
}
