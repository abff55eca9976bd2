// Loopback is decided by addresses: literals as written, names by what they resolve to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isLoopbackAddress, resolvesToLoopback, type Lookup } from "./loopback.js";

test("loopback literals are 127.0.0.0/8 and ::1, in any spelling; nothing else", () => {
  for (const address of ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
    assert.equal(isLoopbackAddress(address), true, address);
  }
  for (const address of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::ffff:10.0.0.1", "127.example.com", "localhost", "127.0.0.1.nip.io"]) {
    assert.equal(isLoopbackAddress(address), false, address);
  }
});

function fakeLookup(table: Record<string, string[]>): Lookup {
  return async (name) => {
    const addresses = table[name];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
}

test("a name is loopback only when every address it resolves to is", async () => {
  const lookup = fakeLookup({
    localhost: ["127.0.0.1", "::1"],
    "127.attacker.example": ["203.0.113.7"],
    "mixed.example": ["127.0.0.1", "192.0.2.1"],
    "box.internal": ["127.0.1.1"],
  });
  assert.equal(await resolvesToLoopback("localhost", lookup), true);
  assert.equal(await resolvesToLoopback("box.internal", lookup), true);
  assert.equal(await resolvesToLoopback("127.attacker.example", lookup), false);
  assert.equal(await resolvesToLoopback("mixed.example", lookup), false);
  assert.equal(await resolvesToLoopback("unknown.example", lookup), false);
  assert.equal(await resolvesToLoopback("127.0.0.1", fakeLookup({})), true);
  assert.equal(await resolvesToLoopback("0.0.0.0", fakeLookup({})), false);
});
