// The PROXY protocol (HAProxy's spec, versions 1 and 2), as nginx's stream module sends it with
// `proxy_protocol on`: the first bytes of a connection from a trusted proxy name the real client,
// so per-address limits apply to the client, not to the proxy.

export type ProxyHeader =
  | { kind: 'more' }
  | { kind: 'error'; text: string }
  /** address: the client's; undefined for LOCAL/UNKNOWN (health checks: the proxy's own address stands). */
  | { kind: 'done'; address: string | undefined; rest: Buffer };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_MAX = 107;
const V2_MAX = 16 + 216;

/** Parses the header at the start of `buf` (all bytes received so far). */
export function parseProxyHeader(buf: Buffer): ProxyHeader {
  const sig = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.subarray(0, sig).equals(V2_SIGNATURE.subarray(0, sig))) return buf.length < 16 ? { kind: 'more' } : parseV2(buf);
  const v1 = Math.min(buf.length, 6);
  if (buf.subarray(0, v1).toString('latin1') === 'PROXY '.slice(0, v1)) return parseV1(buf);
  return { kind: 'error', text: 'expected a PROXY protocol header from the proxy' };
}

function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= V1_MAX ? { kind: 'error', text: 'PROXY v1 header too long' } : { kind: 'more' };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const rest = buf.subarray(end + 2);
  if (parts[1] === 'UNKNOWN') return { kind: 'done', address: undefined, rest };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { kind: 'error', text: 'malformed PROXY v1 header' };
  const address = parts[2]!;
  const ok = parts[1] === 'TCP4' ? /^\d{1,3}(\.\d{1,3}){3}$/.test(address) : /^[0-9a-fA-F:.]+$/.test(address) && address.includes(':');
  return ok ? { kind: 'done', address, rest } : { kind: 'error', text: 'malformed address in PROXY v1 header' };
}

function parseV2(buf: Buffer): ProxyHeader {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { kind: 'error', text: 'unsupported PROXY protocol version' };
  const len = buf.readUInt16BE(14);
  if (16 + len > V2_MAX + 2048) return { kind: 'error', text: 'PROXY v2 header too long' };
  if (buf.length < 16 + len) return { kind: 'more' };
  const rest = buf.subarray(16 + len);
  const body = buf.subarray(16, 16 + len);
  if ((verCmd & 0x0f) === 0) return { kind: 'done', address: undefined, rest }; // LOCAL
  const family = buf[13]! >> 4;
  if (family === 1 && len >= 12) return { kind: 'done', address: [...body.subarray(0, 4)].join('.'), rest };
  if (family === 2 && len >= 36) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
    return { kind: 'done', address: groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::'), rest };
  }
  return { kind: 'done', address: undefined, rest };
}

/** Node reports IPv4 clients of a dual-stack listener as ::ffff:a.b.c.d; limits count one address per client. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
