// Unit tests of the sandbox path checks: which texts name exactly one file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { StrataError } from "@strata/contract";
import { normalSandboxPath, parseSandboxPath, refuseRuntimeManaged } from "./sandbox-path.js";

const code = (run: () => unknown) => {
  try {
    run();
    return "ok";
  } catch (error) {
    return error instanceof StrataError ? error.code : String(error);
  }
};

test("a path names one file or is path_invalid", () => {
  assert.deepEqual(parseSandboxPath("/tmp//./a/../b/"), ["tmp", "a", "..", "b"]);
  assert.deepEqual(parseSandboxPath("/"), []);
  for (const bad of ["", "tmp/x", "./x", "/tmp/a\0b", "/..", "/tmp/../../x", "/x/\ud800", "/x/\udc00y", `/${"n".repeat(256)}`]) {
    assert.equal(code(() => parseSandboxPath(bad)), "path_invalid", JSON.stringify(bad));
  }
  assert.equal(code(() => parseSandboxPath(`/${"é".repeat(127)}`)), "ok"); // 254 bytes
  assert.equal(code(() => parseSandboxPath(`/${"é".repeat(128)}`)), "path_invalid"); // 256 bytes
  assert.equal(code(() => parseSandboxPath("/x/\ud83d\ude00")), "ok"); // a pair is one character
  assert.equal(normalSandboxPath("/srv//data/./x/../y/"), "/srv/data/y");
  assert.equal(normalSandboxPath("/"), "/");
});

test("paths the runtime mounts over are path_runtime_managed", () => {
  for (const path of ["/proc", "/proc/1/status", "/sys/fs", "/dev", "/dev/shm/x"]) {
    assert.equal(code(() => refuseRuntimeManaged(path)), "path_runtime_managed", path);
  }
  for (const path of ["/", "/devices", "/process", "/tmp", "/srv/dev"]) assert.equal(code(() => refuseRuntimeManaged(path)), "ok", path);
});
