// Small, dependency-free helpers for IPv4/IPv6 literals and CIDRs, used by config validation and
// the network guard. Kept separate so config.ts stays about config.
import { isIP } from "node:net";

export interface Cidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  const address = m[1]!;
  const prefix = Number(m[2]);
  const family = isIP(address);
  if (family === 0) return undefined;
  if (family === 4 && prefix > 32) return undefined;
  if (family === 6 && prefix > 128) return undefined;
  return { address, prefix, family: family as 4 | 6 };
}

export function isIpLiteral(text: string): boolean {
  return isIP(text) !== 0;
}

function ipv4ToInt(address: string): number {
  return address.split(".").reduce((acc, part) => (acc << 8) + Number(part), 0) >>> 0;
}

/** True when the IPv4 `address` lies inside `cidr` (IPv6: only exact-prefix string compare). */
export function cidrContains(cidr: Cidr, address: string): boolean {
  if (isIP(address) !== cidr.family) return false;
  if (cidr.family === 6) return cidr.prefix === 128 ? cidr.address === address : true;
  if (cidr.prefix === 0) return true;
  const mask = (0xffffffff << (32 - cidr.prefix)) >>> 0;
  return (ipv4ToInt(cidr.address) & mask) === (ipv4ToInt(address) & mask);
}

/** The network address of an IPv4 CIDR, e.g. 192.168.1.100/24 -> 192.168.1.0/24. */
export function networkOf(cidr: Cidr): string {
  if (cidr.family === 6) return `${cidr.address}/${cidr.prefix}`;
  const mask = cidr.prefix === 0 ? 0 : (0xffffffff << (32 - cidr.prefix)) >>> 0;
  const n = (ipv4ToInt(cidr.address) & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".")}/${cidr.prefix}`;
}

export function netmaskOf(prefix: number): string {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 255).join(".");
}
