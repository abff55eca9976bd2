// Whether an address or a host name stays on this machine. Decided by the
// addresses a name resolves to, never by how the name is spelled: `127.x.com`
// is a name like any other.
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP, isIPv4 } from "node:net";

/** Resolves a name to all its addresses, as `dns.promises.lookup(name, { all: true })` does. */
export type Lookup = (name: string, options: { all: true }) => Promise<{ address: string; family: number }[]>;

/** Whether an IP literal (v4, v6 or v4-mapped v6, brackets allowed) is a loopback address: 127.0.0.0/8 or ::1. */
export function isLoopbackAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "");
  if (isIPv4(bare)) return bare.startsWith("127.");
  if (isIP(bare) !== 6) return false;
  const normal = new URL(`http://[${bare}]/`).hostname.slice(1, -1).toLowerCase();
  if (normal === "::1") return true;
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(normal);
  return mapped !== null && parseInt(mapped[1]!, 16) >> 8 === 127;
}

/**
 * Whether every address `host` resolves to is a loopback address. An IP
 * literal is judged as written; a name that does not resolve is not loopback.
 */
export async function resolvesToLoopback(host: string, lookup: Lookup = dnsLookup): Promise<boolean> {
  const bare = host.replace(/^\[|\]$/g, "");
  if (isIP(bare)) return isLoopbackAddress(bare);
  try {
    const addresses = await lookup(bare, { all: true });
    return addresses.length > 0 && addresses.every((entry) => isLoopbackAddress(entry.address));
  } catch {
    return false;
  }
}
