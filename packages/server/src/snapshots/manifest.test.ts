// Canonical manifests: key order and whitespace never change the digest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalJson, parseManifest, sha256 } from "./manifest.js";

test("canonical JSON sorts keys at every depth and drops undefined", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" }, u: undefined }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
  assert.equal(sha256(canonicalJson({ x: 1, y: 2 })), sha256(canonicalJson({ y: 2, x: 1 })));
  assert.notEqual(sha256(canonicalJson({ x: 1 })), sha256(canonicalJson({ x: 2 })));
});

test("malformed manifests are refused with the reason", () => {
  const good = {
    schemaVersion: 1, id: "0b5c7c5e-4a4b-4c47-9a51-3f0f3c1f8a10", kind: "container", sandboxId: "s", parent: null,
    baseImage: { ref: "r", digest: "sha256:x" }, labels: {}, content: { sizeBytes: 1, imageId: "sha256:i" }, createdAt: new Date().toISOString(),
  };
  assert.equal(parseManifest(JSON.stringify(good)).id, good.id);
  assert.throws(() => parseManifest(JSON.stringify({ ...good, id: "../../etc" })), /id/);
  assert.throws(() => parseManifest(JSON.stringify({ ...good, kind: "vm" })), /kind/);
  assert.throws(() => parseManifest(JSON.stringify({ ...good, labels: { a: 1 } })), /labels/);
  assert.throws(() => parseManifest("{"), SyntaxError);
  assert.throws(() => parseManifest(JSON.stringify({ ...good, kind: "directory", content: { sizeBytes: 1, blobDigest: "sha256:../x", path: "/w" } })), /blobDigest/);
});

test("a manifest's settings are the source's isolation, network and limits, or absent; nothing else", () => {
  const good = {
    schemaVersion: 1, id: "0b5c7c5e-4a4b-4c47-9a51-3f0f3c1f8a10", kind: "container", sandboxId: "s", parent: null,
    baseImage: { ref: "r", digest: "sha256:x" }, labels: {}, content: { sizeBytes: 1, imageId: "sha256:i" }, createdAt: new Date().toISOString(),
  };
  const settings = { isolation: "gvisor", network: false, resources: { cpus: 0.5, memoryMb: 256, pids: 100 } };
  assert.deepEqual(parseManifest(JSON.stringify({ ...good, settings })).settings, settings);
  assert.equal(parseManifest(JSON.stringify(good)).settings, undefined);
  for (const bad of [
    { ...settings, isolation: "kata" },
    { ...settings, network: "no" },
    { ...settings, resources: { memoryMb: 1.5 } },
    { ...settings, resources: { pids: -1 } },
    { ...settings, resources: { disk: 1 } },
    { ...settings, privileged: true },
    { isolation: "gvisor", network: false },
  ]) {
    assert.throws(() => parseManifest(JSON.stringify({ ...good, settings: bad })), /settings/, JSON.stringify(bad));
  }
});
