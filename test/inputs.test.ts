// What a client sends is checked against what the engine and the kernel accept
// before the engine sees it: each small input gets its exact status, code and
// field; ids always mean their own object; Idempotency-Key compares meaning and
// is claimed atomically. Nothing half-made is left behind.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { startServer } from "@strata/server";
import type { Sandbox } from "@strata/sdk";
import { baseImage, startTestServer, type TestServer, test } from "./harness.js";

interface Reply {
  status: number;
  headers: Headers;
  body: { id?: string; exitCode?: number; stdout?: string; error?: { code: string; message: string; details?: { field?: string } } };
}

let t: TestServer;
let sandbox: Sandbox;
before(async () => {
  t = await startTestServer();
  sandbox = await t.strata.sandboxes.create({ image: baseImage });
});
after(async () => {
  await t.close();
});

/** One request with a JSON body, bounded so a wedged engine fails the test instead of hanging it. */
async function send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await fetch(`${t.server.url}${path}`, {
    method,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(60000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Reply["body"]) : {} };
}

function assertRefused(reply: Reply, status: number, code: string, field: string, what: string): void {
  assert.equal(reply.status, status, `${what}: ${JSON.stringify(reply.body)}`);
  assert.equal(reply.body.error?.code, code, what);
  assert.equal(reply.body.error?.details?.field, field, what);
}

test("a 70 KB program name is 413 field_too_large before the engine sees it, and the sandbox still answers", async () => {
  const exec = `/v1/sandboxes/${sandbox.id}/exec`;
  assertRefused(await send("POST", exec, { cmd: ["a".repeat(70 * 1024)] }), 413, "field_too_large", "body/cmd/0", "exec");
  assertRefused(await send("POST", `${exec}/stream`, { cmd: ["a".repeat(70 * 1024)] }), 413, "field_too_large", "body/cmd/0", "exec stream");
  assertRefused(
    await send("POST", "/v1/sandboxes", { image: baseImage, cmd: ["a".repeat(70 * 1024)] }),
    413, "field_too_large", "body/cmd/0", "create",
  );
  const alive = await send("POST", exec, { cmd: ["echo", "alive"] });
  assert.equal(alive.status, 200);
  assert.equal(alive.body.stdout, "alive\n");
  assert.equal(await t.containers(), 1);
});

test("arguments and environment are bounded by the kernel's limits, counted in bytes, naming the field", async () => {
  const exec = `/v1/sandboxes/${sandbox.id}/exec`;
  // 70 KB as an argument is within the kernel's 128 KiB per string: it runs.
  const fits = await send("POST", exec, { cmd: ["sh", "-c", 'echo ${#1}', "x", "a".repeat(70 * 1024)] });
  assert.equal(fits.status, 200);
  assert.equal(fits.body.stdout, `${70 * 1024}\n`);
  assertRefused(await send("POST", exec, { cmd: ["sh", "-c", "true", "x", "a".repeat(131072)] }), 413, "field_too_large", "body/cmd/4", "one argument");
  assertRefused(await send("POST", exec, { cmd: ["echo", "é".repeat(70000)] }), 413, "field_too_large", "body/cmd/1", "multi-byte argument");
  assertRefused(await send("POST", exec, { cmd: ["true"], env: { BIG: "x".repeat(131068) } }), 413, "field_too_large", "body/env/BIG", "env entry");
  const many = Array.from({ length: 12 }, () => "a".repeat(100000));
  assertRefused(await send("POST", exec, { cmd: ["true", ...many] }), 413, "field_too_large", "body/cmd", "arguments together");
  assertRefused(await send("POST", exec, { cmd: ["true"], cwd: `/${"d".repeat(5000)}` }), 413, "field_too_large", "body/cwd", "cwd");
  assertRefused(await send("POST", exec, { cmd: ["echo", "a\u0000b"] }), 400, "bad_request", "body/cmd/1", "NUL in an argument");
  assertRefused(await send("POST", exec, { cmd: ["true"], cwd: "/tmp\u0000x" }), 400, "bad_request", "body/cwd", "NUL in cwd");
  assertRefused(await send("GET", `/v1/sandboxes/${sandbox.id}/files?path=/etc%00x`), 400, "path_invalid", "query/path", "NUL in a file path");
  assertRefused(
    await send("POST", `/v1/sandboxes/${sandbox.id}/snapshots`, { kind: "directory", path: "/etc", exclude: ["a\u0000b"] }),
    400, "bad_request", "body/exclude/0", "NUL in an exclude pattern",
  );
  // excludes are relative to the captured directory: an absolute one or one climbing out would silently exclude nothing
  for (const exclude of [["/etc/passwd"], ["ok", "../etc"], ["a/../b"]]) {
    assertRefused(
      await send("POST", `/v1/sandboxes/${sandbox.id}/snapshots`, { kind: "directory", path: "/etc", exclude }),
      400, "bad_request", `body/exclude/${exclude.length - 1}`, `exclude ${JSON.stringify(exclude)}`,
    );
  }
  // Long scripts go through stdin.
  const script = `${"# padding\n".repeat(20000)}echo from-stdin\n`;
  const viaStdin = await send("POST", exec, { cmd: ["sh"], stdin: script });
  assert.equal(viaStdin.status, 200);
  assert.equal(viaStdin.body.stdout, "from-stdin\n");
});

test("map keys that can't be what they claim are 400 naming the key", async () => {
  const exec = `/v1/sandboxes/${sandbox.id}/exec`;
  for (const key of ["A=B", "", "A\u0000"]) {
    const reply = await send("POST", exec, { cmd: ["true"], env: { [key]: "x" } });
    assertRefused(reply, 400, "bad_request", `body/env/${key}`, `env key ${JSON.stringify(key)}`);
    assert.ok(reply.body.error!.message.includes(JSON.stringify(key)), reply.body.error!.message);
    assertRefused(await send("POST", "/v1/sandboxes", { image: baseImage, env: { [key]: "x" } }), 400, "bad_request", `body/env/${key}`, "create env");
  }
  for (const key of ["a=b", "with space", "-leading", "trailing.", "tab\t"]) {
    assertRefused(await send("POST", "/v1/sandboxes", { image: baseImage, labels: { [key]: "x" } }), 400, "bad_request", `body/labels/${key}`, `label ${key}`);
    assertRefused(await send("POST", `/v1/sandboxes/${sandbox.id}/snapshots`, { labels: { [key]: "x" } }), 400, "bad_request", `body/labels/${key}`, `snapshot label ${key}`);
  }
  const ok = await send("POST", `/v1/sandboxes/${sandbox.id}/exec`, { cmd: ["sh", "-c", "echo $MY_VAR"], env: { MY_VAR: "a=b" } });
  assert.equal(ok.body.stdout, "a=b\n");
  assert.equal((await t.strata.sandboxes.list()).length, 1);
  assert.equal(await t.containers(), 1);
});

test("build arguments and labels with impossible names are 400 naming the key, and no build is queued", async () => {
  const dir = mkdtempSync(join(tmpdir(), "strata-inputs-context-"));
  try {
    writeFileSync(join(dir, "Dockerfile"), `FROM ${baseImage}\nARG GOOD\n`);
    const tar = spawnSync("tar", ["-cf", "-", "-C", dir, "Dockerfile"]).stdout;
    const cases: [string, string, string][] = [
      ["buildArgs", JSON.stringify({ "A=B": "x" }), "buildArgs/A=B"],
      ["buildArgs", JSON.stringify({ "1st": "x" }), "buildArgs/1st"],
      ["buildArgs", JSON.stringify({ "": "x" }), "buildArgs/"],
      ["labels", JSON.stringify({ "bad key": "x" }), "labels/bad key"],
    ];
    for (const [field, value, path] of cases) {
      const form = new FormData();
      form.set(field, value);
      form.set("context", new Blob([tar]), "context.tar");
      const response = await fetch(`${t.server.url}/v1/builds`, { method: "POST", body: form, signal: AbortSignal.timeout(60000) });
      const body = (await response.json()) as Reply["body"];
      assert.equal(response.status, 400, `${field} ${value}: ${JSON.stringify(body)}`);
      assert.equal(body.error?.code, "bad_request");
      assert.equal(body.error?.details?.field, path);
    }
    const longDockerfile = new FormData();
    longDockerfile.set("dockerfile", "d".repeat(5000));
    longDockerfile.set("context", new Blob([tar]), "context.tar");
    const long = await fetch(`${t.server.url}/v1/builds`, { method: "POST", body: longDockerfile, signal: AbortSignal.timeout(60000) });
    assert.equal(long.status, 413);
    assert.equal(((await long.json()) as Reply["body"]).error?.details?.field, "dockerfile");
    const badName = new FormData();
    badName.set("name", randomUUID());
    badName.set("context", new Blob([tar]), "context.tar");
    const named = await fetch(`${t.server.url}/v1/builds`, { method: "POST", body: badName, signal: AbortSignal.timeout(60000) });
    assert.equal(named.status, 400);
    assert.deepEqual(readdirSync(join(t.home, "builds")), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("unknown images and impossible resources are 4xx, never 500, and create nothing", async () => {
  const cases: [unknown, number, string, string][] = [
    [{ image: "../../etc/passwd" }, 400, "bad_request", "body/image"],
    [{ image: "\ud800" }, 400, "bad_request", "body/image"],
    [{ image: "Upper/Case" }, 400, "bad_request", "body/image"],
    [{ image: baseImage, resources: { cpus: 0.0001 } }, 400, "bad_request", "body/resources/cpus"],
    [{ image: baseImage, resources: { memoryMb: 5 } }, 400, "bad_request", "body/resources/memoryMb"],
    [{ image: baseImage, isolation: "gvisor", resources: { memoryMb: 8 } }, 400, "bad_request", "body/resources/memoryMb"],
    [{ image: baseImage, isolation: "gvisor", resources: { pids: 8 } }, 400, "bad_request", "body/resources/pids"],
    // gVisor's own threads count against a process limit and reaching it stops the sandbox: none is taken
    [{ image: baseImage, isolation: "gvisor", resources: { pids: 4096 } }, 400, "bad_request", "body/resources/pids"],
    // the init needs a second process for the command, an exec and its killer two more
    [{ image: baseImage, resources: { pids: 1 } }, 400, "bad_request", "body/resources/pids"],
  ];
  for (const [body, status, code, field] of cases) assertRefused(await send("POST", "/v1/sandboxes", body), status, code, field, JSON.stringify(body));
  // A lone surrogate in the raw JSON text, as a client would send it.
  assertRefused(await send("POST", "/v1/sandboxes", '{"image":"\\ud800"}'), 400, "bad_request", "body/image", "raw lone surrogate");
  const tooMany = await send("POST", "/v1/sandboxes", { image: baseImage, resources: { cpus: 1000 } });
  assert.equal(tooMany.status, 400, JSON.stringify(tooMany.body));
  assert.equal(tooMany.body.error?.code, "bad_request");
  const unknown = await send("POST", "/v1/sandboxes", { image: "strata-test/never-built:1.0" });
  assert.equal(unknown.body.error?.code, "image_not_found");
  assert.equal((await t.strata.sandboxes.list()).length, 1);
  assert.equal(await t.containers(), 1);
});

test("names that could be taken for an id or digest are refused; an id always means its own object", async () => {
  for (const name of [randomUUID(), "deadbeef", "0123456789ab", "sha256:abc"]) {
    assertRefused(await send("POST", "/v1/sandboxes", { image: baseImage, name }), 400, "bad_request", "body/name", `sandbox ${name}`);
  }
  const first = await sandbox.snapshotDirectory("/etc", { name: "first-etc" });
  await first.waitUntilReady({ timeoutMs: 60000 });
  assertRefused(await send("POST", `/v1/sandboxes/${sandbox.id}/snapshots`, { kind: "directory", path: "/etc", name: first.id }), 400, "bad_request", "body/name", "snapshot named with an id");
  // A record that holds such a name anyway (written before the rule) never shadows the id or digest.
  const second = await sandbox.snapshotDirectory("/etc", { name: "second-etc" });
  await second.waitUntilReady({ timeoutMs: 60000 });
  const record = t.server.context.index.findSnapshot(second.id)!;
  t.server.context.index.putSnapshot({ ...record, name: first.id });
  assert.equal((await t.strata.snapshots.get(first.id)).id, first.id);
  assert.equal((await t.strata.snapshots.get(first.info.digest!)).id, first.id);
  await t.strata.snapshots.delete(first.id);
  assert.equal((await t.strata.snapshots.get(second.id)).id, second.id);
  await t.strata.snapshots.delete(second.id);
});

test("Idempotency-Key compares the request's meaning, not its bytes", async () => {
  const key = `same-meaning-${randomUUID()}`;
  const first = await send("POST", "/v1/sandboxes", `{"image":"${baseImage}","labels":{"a":"1","b":"2"}}`, { "idempotency-key": key });
  try {
    assert.equal(first.status, 201);
    const again = await send("POST", "/v1/sandboxes", `{ "labels": {"b": "2", "a": "1"}, "image": "${baseImage}" }`, { "idempotency-key": key });
    assert.equal(again.status, 201);
    assert.equal(again.body.id, first.body.id);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    const other = await send("POST", "/v1/sandboxes", { image: baseImage, labels: { a: "other" } }, { "idempotency-key": key });
    assert.equal(other.status, 409);
    assert.equal(other.body.error?.code, "idempotency_conflict");
  } finally {
    if (first.body.id) await send("DELETE", `/v1/sandboxes/${first.body.id}`);
  }
});

test("two concurrent requests with one Idempotency-Key and different bodies: one 201, the other 409", async () => {
  const key = `concurrent-${randomUUID()}`;
  const replies = await Promise.all([
    send("POST", "/v1/sandboxes", { image: baseImage, labels: { race: "one" } }, { "idempotency-key": key }),
    send("POST", "/v1/sandboxes", { image: baseImage, labels: { race: "two" } }, { "idempotency-key": key }),
  ]);
  try {
    assert.deepEqual(replies.map((r) => r.status).sort(), [201, 409]);
    assert.equal(replies.find((r) => r.status === 409)!.body.error?.code, "idempotency_conflict");
    assert.equal((await t.strata.sandboxes.list({ labels: { race: "one" } })).length + (await t.strata.sandboxes.list({ labels: { race: "two" } })).length, 1);
  } finally {
    for (const reply of replies) if (reply.status === 201 && reply.body.id) await send("DELETE", `/v1/sandboxes/${reply.body.id}`);
  }
  const same = `concurrent-same-${randomUUID()}`;
  const twins = await Promise.all([
    send("POST", "/v1/sandboxes", { image: baseImage, labels: { race: "same" } }, { "idempotency-key": same }),
    send("POST", "/v1/sandboxes", { labels: { race: "same" }, image: baseImage }, { "idempotency-key": same }),
  ]);
  try {
    assert.deepEqual(twins.map((r) => r.status), [201, 201]);
    assert.equal(twins[0]!.body.id, twins[1]!.body.id);
  } finally {
    if (twins[0]?.body.id) await send("DELETE", `/v1/sandboxes/${twins[0].body.id}`);
  }
});

test("Idempotency-Key replies are forgotten after 24 hours", async () => {
  const key = `expiring-${randomUUID()}`;
  const first = await send("POST", "/v1/sandboxes", { image: baseImage, labels: { expiring: "1" } }, { "idempotency-key": key });
  try {
    assert.equal(first.status, 201);
    // Age the key past the retention, as a day of waiting would.
    const db = new Database(join(t.home, "strata.db"));
    try {
      db.prepare("UPDATE idempotency SET created_at = ? WHERE key = ?").run(new Date(Date.now() - 25 * 3600 * 1000).toISOString(), key);
    } finally {
      db.close();
    }
    const reused = await send("POST", "/v1/sandboxes", { image: baseImage, labels: { expiring: "2" } }, { "idempotency-key": key });
    assert.equal(reused.status, 201, JSON.stringify(reused.body));
    assert.notEqual(reused.body.id, first.body.id);
    await send("DELETE", `/v1/sandboxes/${reused.body.id}`);
  } finally {
    await send("DELETE", `/v1/sandboxes/${first.body.id}`);
  }
});

test("a host name that only looks like loopback is refused without an API key", async () => {
  const home = mkdtempSync(join(tmpdir(), "strata-inputs-host-"));
  try {
    await assert.rejects(
      startServer({ port: 0, host: "127.0.0.1.strata-test.invalid", home, log: () => undefined }),
      (error: { code?: string; message?: string }) => error.code === "bad_request" && /API key/.test(error.message ?? ""),
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
