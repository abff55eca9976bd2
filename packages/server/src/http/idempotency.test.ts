// An Idempotency-Key's request is compared by meaning: canonical JSON.
import { test } from "node:test";
import assert from "node:assert/strict";
import { requestFingerprint } from "./idempotency.js";

test("the same request written with keys in another order or other spacing has one fingerprint", () => {
  const scope = "POST /v1/sandboxes";
  const a = JSON.parse('{"image":"x","labels":{"a":"1","b":"2"},"resources":{"cpus":1,"memoryMb":64}}');
  const b = JSON.parse('{ "resources": {"memoryMb": 64, "cpus": 1.0}, "labels": {"b":"2","a":"1"}, "image": "x" }');
  assert.equal(requestFingerprint(scope, a), requestFingerprint(scope, b));
});

test("a different value, array order, route or absent body changes the fingerprint", () => {
  const scope = "POST /v1/sandboxes";
  const base = requestFingerprint(scope, { image: "x", cmd: ["a", "b"] });
  assert.notEqual(requestFingerprint(scope, { image: "y", cmd: ["a", "b"] }), base);
  assert.notEqual(requestFingerprint(scope, { image: "x", cmd: ["b", "a"] }), base);
  assert.notEqual(requestFingerprint("POST /v1/sandboxes/s/snapshots", { image: "x", cmd: ["a", "b"] }), base);
  assert.notEqual(requestFingerprint(scope, undefined), base);
});
