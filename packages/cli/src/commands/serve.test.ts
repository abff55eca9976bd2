// `strata serve` options: the registry's environment options apply when the
// registry itself is given on the command line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { registryOption } from "./serve.js";

test("STRATA_REGISTRY_INSECURE applies with --registry; the flag wins over the environment", () => {
  const env = { STRATA_REGISTRY_INSECURE: "1", STRATA_REGISTRY_USER: "env-user", STRATA_REGISTRY_PASSWORD: "env-pass" };
  const fromEnv = registryOption({ registry: "registry.example:5000/team" }, env);
  assert.deepEqual(fromEnv, { host: "registry.example:5000", namespace: "team", username: "env-user", password: "env-pass", insecure: true });
  assert.equal(registryOption({ registry: "registry.example:5000" }, {})?.insecure, false);
  assert.equal(registryOption({ registry: "registry.example:5000" }, { STRATA_REGISTRY_INSECURE: "0" })?.insecure, false);
  assert.equal(registryOption({ registry: "registry.example:5000", "registry-insecure": true }, { STRATA_REGISTRY_INSECURE: "0" })?.insecure, true);
  assert.equal(registryOption({ registry: "registry.example", "registry-user": "flag-user" }, env)?.username, "flag-user");
  assert.equal(registryOption({}, env), undefined);
});

test("a registry is plain HTTP by default only on localhost or a loopback address, never by a name's spelling", () => {
  assert.equal(registryOption({ registry: "127.0.0.1:5000" }, {})?.insecure, true);
  assert.equal(registryOption({ registry: "localhost:5000" }, {})?.insecure, true);
  assert.equal(registryOption({ registry: "[::1]:5000" }, {})?.insecure, true);
  assert.equal(registryOption({ registry: "127.example.com:5000" }, {})?.insecure, false);
});
