// The engine's refusals become contract codes through one table; its own faults stay 500.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DockerApiError } from "./docker-client.js";
import { engineError, refusalCode } from "./errors.js";

test("refusals of the request map to 4xx codes", () => {
  assert.equal(refusalCode(400, "invalid reference format"), "bad_request");
  assert.equal(refusalCode(301, ""), "bad_request");
  assert.equal(refusalCode(404, "No such image: strata-test/none:1"), "image_not_found");
  assert.equal(refusalCode(404, "No such container: 0123"), "sandbox_not_found");
  assert.equal(refusalCode(409, "Container 0123 is not running"), "sandbox_not_running");
  assert.equal(refusalCode(500, "failed to create shim task: OCI runtime create failed: container init was OOM-killed (memory might be too low?)"), "bad_request");
  assert.equal(refusalCode(500, "failed to write \"1000 100000\": write /sys/fs/cgroup/x/cpu.max: invalid argument"), "bad_request");
});

test("the engine's own faults and unknown failures stay internal", () => {
  assert.equal(refusalCode(500, "driver failed programming external connectivity"), undefined);
  assert.equal(engineError(new DockerApiError(500, "boom", "/x"), "create sandbox").code, "internal");
  assert.equal(engineError(new DockerApiError(400, "bad parameter", "/x"), "create sandbox").status, 400);
  assert.equal(engineError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), "inspect").code, "engine_unavailable");
  // a missing socket is the engine being down; a missing file on the host is not
  assert.equal(engineError(Object.assign(new Error("connect ENOENT /var/run/docker.sock"), { code: "ENOENT", syscall: "connect" }), "inspect").code, "engine_unavailable");
  assert.equal(engineError(Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: "ENOENT", syscall: "open" }), "capture directory").code, "internal");
});
