// Every reply that is an error has the contract's one shape,
// `{"error": {"code", "message"}}`, with a code of the closed list and the
// status that code travels with: the framework's and the HTTP parser's own
// refusals included (bad URLs, overlong parameters, bodies it cannot parse,
// oversized headers, malformed requests).
import net from "node:net";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { errorStatus, isErrorCode } from "@strata/contract";
import { startTestServer, type TestServer, test } from "./harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

/** Checks the reply is the contract's error shape with this code and the code's status. */
function assertError(status: number, text: string, code: string, what: string): void {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: the reply is not JSON: ${text}`);
  }
  const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
  assert.deepEqual(Object.keys(body as object), ["error"], `${what}: ${text}`);
  assert.deepEqual(Object.keys(error ?? {}).sort(), ["code", "message"], `${what}: ${text}`);
  assert.equal(error?.code, code, `${what}: ${text}`);
  assert.ok(typeof error?.code === "string" && isErrorCode(error.code), `${what}: a code of the closed list`);
  assert.equal(typeof error?.message, "string");
  assert.equal(status, errorStatus[code as keyof typeof errorStatus], `${what}: the status the code travels with`);
}

async function viaFetch(method: string, path: string, init: { body?: string; contentType?: string } = {}) {
  const response = await fetch(`${t.server.url}${path}`, {
    method,
    headers: init.contentType ? { "content-type": init.contentType } : {},
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  return { status: response.status, text: await response.text() };
}

/** Sends raw bytes and reads the whole reply, for requests fetch would refuse to send. */
async function viaSocket(raw: string | Buffer): Promise<{ status: number; text: string }> {
  const url = new URL(t.server.url);
  const socket = net.connect(Number(url.port), url.hostname);
  const chunks: Buffer[] = [];
  socket.on("data", (data: Buffer) => chunks.push(data));
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("close", () => resolve());
    socket.write(raw);
  });
  const reply = Buffer.concat(chunks).toString("latin1");
  const match = /^HTTP\/1\.1 (\d{3})/.exec(reply);
  assert.ok(match, `a reply with a status line: ${JSON.stringify(reply.slice(0, 200))}`);
  const body = reply.slice(reply.indexOf("\r\n\r\n") + 4);
  return { status: Number(match[1]), text: body };
}

test("a parameter over the router's length limit is a 414 uri_too_long in the contract's shape", async () => {
  const reply = await viaFetch("GET", `/v1/sandboxes/${"a".repeat(200)}`);
  assertError(reply.status, reply.text, "uri_too_long", "200-character id");
});

test("a path that is not valid after percent-decoding is a 400 url_invalid", async () => {
  for (const path of ["/v1/sandboxes/%ff%fe", "/v1/sandboxes/%c0%af/files?path=/etc", "/v1/snapshots/%ed%a0%80"]) {
    const reply = await viaFetch("GET", path);
    assertError(reply.status, reply.text, "url_invalid", path);
  }
});

test("bodies the framework cannot take: bad or empty JSON, a wrong content type, a body over the limit", async () => {
  const broken = await viaFetch("POST", "/v1/sandboxes", { body: '{"image": ', contentType: "application/json" });
  assertError(broken.status, broken.text, "bad_request", "invalid JSON");
  const empty = await viaFetch("POST", "/v1/sandboxes", { body: "", contentType: "application/json" });
  assertError(empty.status, empty.text, "bad_request", "empty JSON body");
  const text = await viaFetch("POST", "/v1/sandboxes", { body: "image=x", contentType: "text/plain" });
  assertError(text.status, text.text, "unsupported_media_type", "text/plain body");
  const form = await viaFetch("POST", "/v1/sandboxes", { body: "image=x", contentType: "application/x-www-form-urlencoded" });
  assertError(form.status, form.text, "unsupported_media_type", "form body");
  // multipart is for builds only: a JSON route does not parse a form
  const multipartForm = await viaFetch("POST", "/v1/sandboxes", { body: "--b\r\ncontent-disposition: form-data; name=\"image\"\r\n\r\nx\r\n--b--\r\n", contentType: "multipart/form-data; boundary=b" });
  assertError(multipartForm.status, multipartForm.text, "unsupported_media_type", "a multipart form to a JSON route");
  const raw = await viaFetch("POST", "/v1/sandboxes", { body: "{}", contentType: "application/octet-stream" });
  assertError(raw.status, raw.text, "unsupported_media_type", "a JSON route sent raw bytes");
  const upload = await viaFetch("PUT", "/v1/sandboxes/nope/files?path=/x", { body: "x", contentType: "text/plain" });
  assertError(upload.status, upload.text, "unsupported_media_type", "text/plain upload");
  const huge = await viaSocket(
    "POST /v1/sandboxes HTTP/1.1\r\nhost: strata\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\nconnection: close\r\n\r\n{}",
  );
  assertError(huge.status, huge.text, "payload_too_large", "a body over the limit");
});

test("a malformed multipart build form is a 400, never a 500", async () => {
  const boundary = "----strata-errors";
  const cut = `--${boundary}\r\ncontent-disposition: form-data; name="context"; filename="c.tar"\r\ncontent-type: application/x-tar\r\n\r\nnot all of it`;
  const reply = await viaFetch("POST", "/v1/builds", { body: cut, contentType: `multipart/form-data; boundary=${boundary}` });
  assertError(reply.status, reply.text, "bad_request", "a form without its end");
  const json = await viaFetch("POST", "/v1/builds", { body: "{}", contentType: "application/json" });
  assertError(json.status, json.text, "unsupported_media_type", "a build as JSON");
});

test("what the HTTP parser refuses: oversized headers, too many headers, a malformed request, a bad Content-Length", async () => {
  const big = await viaSocket(`GET /v1/sandboxes HTTP/1.1\r\nhost: strata\r\nx-big: ${"a".repeat(20000)}\r\n\r\n`);
  assertError(big.status, big.text, "headers_too_large", "a 20 kB header");
  const many = Array.from({ length: 3000 }, (_, i) => `x-h${i}: v`).join("\r\n");
  const lots = await viaSocket(`GET /v1/sandboxes HTTP/1.1\r\nhost: strata\r\n${many}\r\n\r\n`);
  assertError(lots.status, lots.text, "headers_too_large", "3000 headers");
  const longUrl = await viaSocket(`GET /v1/sandboxes?label=${"a".repeat(20000)} HTTP/1.1\r\nhost: strata\r\n\r\n`);
  assertError(longUrl.status, longUrl.text, "headers_too_large", "a 20 kB URL");
  const garbage = await viaSocket("NOT HTTP AT ALL\r\n\r\n");
  assertError(garbage.status, garbage.text, "bad_request", "a malformed request line");
  const length = await viaSocket("POST /v1/sandboxes HTTP/1.1\r\nhost: strata\r\ncontent-type: application/json\r\ncontent-length: ten\r\n\r\n{}");
  assertError(length.status, length.text, "bad_request", "a Content-Length that is not a number");
  const both = await viaSocket(
    "POST /v1/sandboxes HTTP/1.1\r\nhost: strata\r\ncontent-type: application/json\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
  );
  assertError(both.status, both.text, "bad_request", "Content-Length and Transfer-Encoding together");
});

test("unknown routes and methods are 404 route_not_found", async () => {
  for (const [method, path] of [["GET", "/nope"], ["PATCH", "/v1/sandboxes"], ["GET", "/v1/sandboxes/x/y/z"]] as const) {
    const reply = await viaFetch(method, path);
    assertError(reply.status, reply.text, "route_not_found", `${method} ${path}`);
  }
});

test("the server answers after every refusal above", async () => {
  const reply = await viaFetch("GET", "/v1/sandboxes");
  assert.equal(reply.status, 200);
});
