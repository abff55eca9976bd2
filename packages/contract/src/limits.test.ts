// The process limits count bytes as the kernel does and name the field over them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { limits, processInputProblem, resourceProblem } from "./limits.js";
import { isName } from "./sandbox.js";

test("arguments and environment entries are measured in UTF-8 bytes, the program by PATH_MAX", () => {
  assert.equal(processInputProblem({ cmd: ["sh", "a".repeat(limits.argBytes)] }, "body"), undefined);
  assert.equal(processInputProblem({ cmd: ["sh", "a".repeat(limits.argBytes + 1)] }, "body")?.field, "body/cmd/1");
  assert.equal(processInputProblem({ cmd: ["sh", "é".repeat(70000)] }, "body")?.field, "body/cmd/1");
  assert.equal(processInputProblem({ cmd: ["a".repeat(limits.programBytes + 1)] }, "body")?.field, "body/cmd/0");
  assert.equal(processInputProblem({ cmd: ["sh"], env: { BIG: "x".repeat(limits.argBytes - 3) } }, "body")?.field, "body/env/BIG");
  assert.equal(processInputProblem({ cmd: ["sh"], env: { BIG: "x".repeat(limits.argBytes - 4) } }, "body"), undefined);
});

test("arguments and environment together are bounded", () => {
  const many = Array.from({ length: 12 }, () => "a".repeat(100000));
  assert.equal(processInputProblem({ cmd: ["sh", ...many] }, "body")?.field, "body/cmd");
  assert.equal(processInputProblem({ cmd: ["sh", ...many.slice(0, 5)], env: { A: "b".repeat(100000) } }, "body"), undefined);
});

test("gvisor sandboxes need room for their kernel", () => {
  assert.equal(resourceProblem({ memoryMb: 8 }, "gvisor", "body/resources")?.field, "body/resources/memoryMb");
  assert.equal(resourceProblem({ pids: 8 }, "gvisor", "body/resources")?.field, "body/resources/pids");
  assert.equal(resourceProblem({ memoryMb: 8, pids: 8 }, "runc", "body/resources"), undefined);
});

test("names never look like ids or digests", () => {
  for (const name of ["web", "ci-base.v2", "x", "stage_1"]) assert.equal(isName(name), true, name);
  for (const name of ["0b9e2c3e-6f2a-4c7e-9d8e-1f2a3b4c5d6e", "deadbeef", "123", "abc-def", "sha256:abcd", "-x", ".x", ""]) {
    assert.equal(isName(name), false, name);
  }
});
