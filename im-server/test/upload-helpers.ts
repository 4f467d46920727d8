// Helpers for the XEP-0363 tests: a free port (the default upload URL names the HTTP port, so
// the server cannot use port 0 there) and slot requests.
import net from 'node:net';
import { xml, type Client, type Element } from '@xmpp/client';

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((res) => srv.close(res));
  return port;
}

export interface SlotUrls { put: string; get: string }
/** element: the <error/> element. */
export interface SlotError { condition: string; text: string; element: Element }

/** Requests a slot; resolves with its URLs or with the error (condition, text, error element). */
export async function requestSlot(c: Client, filename: string, size: number, contentType?: string): Promise<SlotUrls | SlotError> {
  try {
    const iq = await c.iqCaller.request(xml('iq', { type: 'get', to: 'upload.localhost' },
      xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename, size: String(size), 'content-type': contentType })));
    const slot = iq.getChild('slot', 'urn:xmpp:http:upload:0')!;
    return { put: slot.getChild('put')!.attrs.url!, get: slot.getChild('get')!.attrs.url! };
  } catch (e) {
    const err = e as { condition?: string; text?: string; element?: Element };
    if (!err.condition) throw e;
    return { condition: err.condition, text: err.text ?? '', element: err.element! };
  }
}

export function isSlot(r: SlotUrls | SlotError): r is SlotUrls {
  return 'put' in r;
}
