// Wrong requests get a clear error with the right status and leave nothing behind.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { startServer } from "@strata/server";
import { Strata } from "@strata/sdk";
import { routes } from "@strata/contract";
import { baseImage, errorCode, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer({ maxUploadBytes: 1000 });
});
after(async () => {
  await t.close();
});

async function raw(method: string, path: string, body?: string, contentType = "application/json") {
  const response = await fetch(`${t.server.url}${path}`, {
    method,
    headers: body !== undefined ? { "content-type": contentType } : {},
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as { error?: { code: string; message: string } }) : {} };
}

test("an unknown sandbox is a 404 sandbox_not_found everywhere", async () => {
  // every route of the contract's table that names a sandbox, each with a request it would otherwise take
  const valid: Record<string, { body?: string; contentType?: string; query?: string }> = {
    exec: { body: JSON.stringify({ cmd: ["true"] }) },
    execStream: { body: JSON.stringify({ cmd: ["true"] }) },
    readFile: { query: "?path=/etc" },
    writeFile: { query: "?path=/tmp/x", body: "x", contentType: "application/octet-stream" },
    createSnapshot: { body: "{}" },
    forkSandbox: { body: JSON.stringify({ count: 1 }) },
  };
  const named = Object.values(routes).filter((spec) => spec.url.startsWith("/v1/sandboxes/:id"));
  assert.ok(named.length >= 10, `${named.length} sandbox routes`);
  for (const spec of named) {
    const request = valid[spec.operationId] ?? (spec.method === "POST" ? { body: "{}" } : {});
    const reply = await raw(spec.method, `${spec.url.replace(":id", "nope")}${request.query ?? ""}`, request.body, request.contentType);
    assert.equal(reply.status, 404, `${spec.method} ${spec.url}: ${JSON.stringify(reply.body)}`);
    assert.equal(reply.body.error?.code, "sandbox_not_found", `${spec.method} ${spec.url}`);
  }
});

test("an unknown image is a 404 image_not_found naming the reference, with nothing created", async () => {
  const [sandboxes, containers] = [(await t.strata.sandboxes.list()).length, await t.containers()];
  const reply = await raw("POST", "/v1/sandboxes", JSON.stringify({ image: "strata-test/never-built:1.0" }));
  assert.equal(reply.status, 404);
  assert.equal(reply.body.error?.code, "image_not_found");
  assert.match(reply.body.error!.message, /strata-test\/never-built:1\.0/);
  assert.equal((await t.strata.sandboxes.list()).length, sandboxes);
  assert.equal(await t.containers(), containers);
});

test("invalid JSON and invalid fields are 400 naming the field", async () => {
  const containers = await t.containers();
  const broken = await raw("POST", "/v1/sandboxes", '{"image": ');
  assert.equal(broken.status, 400);
  assert.equal(broken.body.error?.code, "bad_request");

  const cases: [unknown, RegExp][] = [
    [{ image: baseImage, cmd: "echo" }, /cmd/],
    [{ image: baseImage, resources: { cpus: -1 } }, /resources\/cpus/],
    [{ image: baseImage, isolation: "vm" }, /isolation/],
    [{ image: baseImage, unknownField: 1 }, /unknownField/],
    [{ image: baseImage, name: "../etc" }, /name/],
    [{ image: baseImage, timeoutSeconds: 0 }, /timeoutSeconds/],
    [{}, /image/],
  ];
  for (const [body, field] of cases) {
    const reply = await raw("POST", "/v1/sandboxes", JSON.stringify(body));
    assert.equal(reply.status, 400, JSON.stringify(body));
    assert.equal(reply.body.error?.code, "bad_request");
    assert.match(reply.body.error!.message, field);
  }
  const sandbox = await t.strata.sandboxes.create({ image: baseImage });
  const exec = await raw("POST", `/v1/sandboxes/${sandbox.id}/exec`, JSON.stringify({ cmd: [] }));
  assert.equal(exec.status, 400);
  assert.match(exec.body.error!.message, /cmd/);
  const files = await raw("GET", `/v1/sandboxes/${sandbox.id}/files?path=relative/path`);
  assert.equal(files.status, 400);
  assert.match(files.body.error!.message, /path/);
  const missing = await raw("GET", `/v1/sandboxes/${sandbox.id}/files?path=/no/such/file`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error?.code, "path_not_found");
  await sandbox.delete();
  assert.equal(await t.containers(), containers);
});

test("unknown routes are 404 route_not_found", async () => {
  const reply = await raw("GET", "/v1/nothing-here");
  assert.equal(reply.status, 404);
  assert.equal(reply.body.error?.code, "route_not_found");
});

test("a name already in use is a 409 and does not create a second sandbox", async () => {
  const containers = await t.containers();
  const first = await t.strata.sandboxes.create({ image: baseImage, name: "twin" });
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, name: "twin" })), "sandbox_name_taken");
  assert.equal(await t.containers(), containers + 1);
  await first.delete();
});

test("a create that fails in the engine removes what it made", async () => {
  const [sandboxes, containers] = [(await t.strata.sandboxes.list()).length, await t.containers()];
  const code = await errorCode(t.strata.sandboxes.create({ image: baseImage, cmd: ["/no/such/binary"] }));
  assert.equal(code, "bad_request");
  assert.equal((await t.strata.sandboxes.list()).length, sandboxes);
  assert.equal(await t.containers(), containers);
});

test("uploads over the limit are 413, by declared length or by counting", async () => {
  const sandbox = await t.strata.sandboxes.create({ image: baseImage });
  assert.equal(await errorCode(sandbox.files.write("/tmp/big", new Uint8Array(5000))), "payload_too_large");
  const streamed = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(400));
      controller.close();
    },
  });
  assert.equal(await errorCode(sandbox.files.write("/tmp/big2", streamed)), "payload_too_large");
  // a chunked body still arriving when the limit is passed: the reply is the 413, not a cancelled request
  const chunked = await new Promise<{ status: number; code?: string }>((resolve, reject) => {
    const url = new URL(`${t.server.url}/v1/sandboxes/${sandbox.id}/files?path=/tmp/big3`);
    const request = httpRequest(url, { method: "PUT", headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" } }, (reply) => {
      let text = "";
      reply.on("data", (chunk) => (text += chunk));
      reply.on("end", () => resolve({ status: reply.statusCode ?? 0, code: JSON.parse(text).error?.code }));
    });
    request.on("error", reject);
    for (let i = 0; i < 20; i++) request.write(Buffer.alloc(16 * 1024, 1));
    request.end();
  });
  assert.deepEqual(chunked, { status: 413, code: "payload_too_large" });
  assert.equal((await sandbox.exec("ls /tmp")).stdout, "");
  const wrongType = await raw("PUT", `/v1/sandboxes/${sandbox.id}/files?path=/tmp/x`, "x", "text/plain");
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.body.error?.code, "unsupported_media_type");
  await sandbox.delete();
});

test("with an API key every request needs it; a public host needs a key", async () => {
  const secured = await startTestServer({ apiKey: "s3cret" });
  try {
    const anonymous = new Strata({ baseUrl: secured.server.url });
    assert.equal(await errorCode(anonymous.sandboxes.list()), "unauthorized");
    const wrong = new Strata({ baseUrl: secured.server.url, apiKey: "guess" });
    assert.equal(await errorCode(wrong.sandboxes.list()), "unauthorized");
    // every route of the contract's table, without a key and with a wrong one
    for (const spec of Object.values(routes)) {
      const path = spec.url.replace(/:[A-Za-z]+/g, "x");
      for (const headers of [{}, { authorization: "Bearer guess" }, { authorization: "s3cret" }] as Record<string, string>[]) {
        const reply = await fetch(`${secured.server.url}${path}`, {
          method: spec.method,
          headers: { ...headers, ...(spec.method === "POST" || spec.method === "PUT" ? { "content-type": "application/json" } : {}) },
          ...(spec.method === "POST" || spec.method === "PUT" ? { body: "{}" } : {}),
        });
        const body = (await reply.json()) as { error?: { code: string } };
        assert.equal(reply.status, 401, `${spec.method} ${spec.url} with ${JSON.stringify(headers)}`);
        assert.equal(body.error?.code, "unauthorized", `${spec.method} ${spec.url}`);
      }
    }
    assert.equal(await secured.containers(), 0, "a refused request made a container");
    assert.deepEqual(await secured.strata.sandboxes.list(), []);
  } finally {
    await secured.close();
  }
  await assert.rejects(startServer({ host: "0.0.0.0", port: 0, home: t.home, log: () => {} }), /API key/);
});

test("an engine that does not answer stops the server from starting, with a clear message", async () => {
  await assert.rejects(
    startServer({ port: 0, home: t.home, dockerHost: "unix:///nonexistent/docker.sock", log: () => {} }),
    (error: Error & { code?: string }) => error.code === "engine_unavailable" && /nonexistent/.test(error.message),
  );
});
