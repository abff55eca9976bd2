// Member names of the archive format: what is accepted and what is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyMember } from "./archive.js";

test("member names are classified or refused", () => {
  assert.deepEqual(classifyMember("strata-archive.json"), { kind: "header" });
  assert.deepEqual(classifyMember("inventory.json"), { kind: "inventory" });
  assert.deepEqual(classifyMember("manifests/0b5c7c5e-4a4b-4c47-9a51-3f0f3c1f8a10.json"), { kind: "manifest", id: "0b5c7c5e-4a4b-4c47-9a51-3f0f3c1f8a10" });
  assert.deepEqual(classifyMember(`blobs/sha256/${"a".repeat(64)}`), { kind: "blob", id: `sha256:${"a".repeat(64)}` });
  assert.deepEqual(classifyMember("images/abc123/layer.tar"), { kind: "image" });
  assert.deepEqual(classifyMember("images/manifest.json"), { kind: "image" });
  for (const bad of ["/etc/passwd", "../x", "images/../../etc", "blobs/sha256/xyz", "manifests/x.json", "other", "images/a/b/c/d", "images//x", "./strata-archive.json"]) {
    assert.ok("unsafe" in classifyMember(bad), bad);
  }
});
