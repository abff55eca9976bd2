// No client can take the server down: every route that reads or writes a
// stream is cut by its client at several points (in the headers, after a few
// body bytes, mid-body, while the reply streams). After each cut the server
// still answers, and nothing is left behind: no partial file, no temporary
// file or staging directory, no tar or zstd child, no container, image or row.
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import tar from "tar-stream";
import { parseRegistry } from "@strata/server";
import type { Sandbox, Snapshot } from "@strata/sdk";
import { baseImage, eventually, startTestServer, type TestServer, test } from "../harness.js";
import { startRegistry, type TestRegistry } from "../registry.js";

let registry: TestRegistry;
let a: TestServer;
let b: TestServer;
let box: Sandbox;
let snapshot: Snapshot;
let archive: Buffer;
let compressed: Buffer;

before(async () => {
  registry = await startRegistry();
  a = await startTestServer({ registry: parseRegistry(`${registry.host}/aborts`) });
  b = await startTestServer();
  box = await a.strata.sandboxes.create({ image: baseImage, timeoutSeconds: 900 });
  await box.exec(["sh", "-c", "mkdir -p /big && dd if=/dev/urandom of=/big/file bs=1M count=8 2>/dev/null && cp /big/file /big/copy"]);
  snapshot = await (await box.snapshot({ name: "aborts-source" })).waitUntilReady();
  archive = Buffer.from(await new Response(await snapshot.export({ compression: "none" })).arrayBuffer());
  compressed = Buffer.from(await new Response(await snapshot.export({ compression: "zstd" })).arrayBuffer());
});

after(async () => {
  try {
    await snapshot?.delete({ force: true }).catch(() => undefined);
    for (const done of (await a.strata.snapshots.list()).snapshots) await done.delete({ force: true }).catch(() => undefined);
  } finally {
    await a?.close();
    await b?.close();
    await registry?.close();
  }
});

type Cut = { inHeaders: true } | { bodyBytes: number } | { replyBytes: number };

function describe(cut: Cut): string {
  if ("inHeaders" in cut) return "in the headers";
  if ("bodyBytes" in cut) return `after ${cut.bodyBytes} body bytes`;
  return `after ${cut.replyBytes} reply bytes`;
}

/**
 * Sends a raw HTTP request over a socket and cuts it where told: halfway
 * through the header block, after `bodyBytes` of the body, or once
 * `replyBytes` of the reply have arrived. Resolves once the socket is gone.
 */
async function cutRequest(server: TestServer, head: string, body: Buffer, cut: Cut): Promise<void> {
  const url = new URL(server.server.url);
  const socket = net.connect(Number(url.port), url.hostname);
  socket.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const write = (data: Buffer | string) => new Promise<void>((resolve) => socket.write(data, () => resolve()));
  const headBytes = Buffer.from(`${head}\r\n\r\n`);
  if ("inHeaders" in cut) {
    await write(headBytes.subarray(0, Math.floor(headBytes.length / 2)));
  } else if ("bodyBytes" in cut) {
    await write(Buffer.concat([headBytes, body.subarray(0, cut.bodyBytes)]));
  } else {
    let received = 0;
    const enough = new Promise<void>((resolve, reject) => {
      socket.on("data", (data: Buffer) => {
        received += data.length;
        if (received >= cut.replyBytes) resolve();
      });
      socket.once("end", () => reject(new Error(`the reply ended after ${received} bytes, before the cut`)));
    });
    await write(Buffer.concat([headBytes, body]));
    await enough;
  }
  socket.destroy();
  await closed;
}

function headOf(method: string, path: string, headers: Record<string, string | number>): string {
  return [`${method} ${path} HTTP/1.1`, "host: strata", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join("\r\n");
}

/** Pids of this process's children (the servers run in it), with their command names. */
function children(): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const task of readdirSync("/proc/self/task")) {
    let list = "";
    try {
      list = readFileSync(`/proc/self/task/${task}/children`, "utf8");
    } catch {
      continue;
    }
    for (const pid of list.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        out.push({ pid, comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim() });
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** What a server holds that a cut request could have left behind. */
async function holdings(server: TestServer) {
  const repo = `strata/snapshots-${server.server.context.serverId}`;
  const images = (await server.server.context.engine.listImages({}))
    .flatMap((image) => image.tags)
    .filter((tag) => tag.startsWith(`${repo}:`))
    .sort();
  return {
    tmp: entries(join(server.home, "tmp")),
    blobTmp: entries(join(server.home, "blobs", "tmp")),
    builds: entries(join(server.home, "builds")).sort(),
    snapshots: (await server.strata.snapshots.list()).snapshots.map((s) => s.id).sort(),
    sandboxes: (await server.strata.sandboxes.list()).map((s) => s.id).sort(),
    containers: await server.containers(),
    images,
    tools: children().filter((child) => child.comm === "tar" || child.comm === "zstd").map((child) => `${child.comm}:${child.pid}`),
  };
}

/**
 * Cuts the request at each point; after each, waits until the server has
 * seen the client go (unless the cut came before a request existed), then
 * until it holds what it held before, and checks it still answers.
 */
async function cutEach(
  server: TestServer, what: string, request: () => { head: string; body: Buffer; url: string }, cuts: Cut[],
  expectedAfter?: () => Promise<void>,
): Promise<void> {
  const baseline = await holdings(server);
  baseline.tools = [];
  for (const cut of cuts) {
    const { head, body, url } = request();
    const seen = server.logs.length;
    await cutRequest(server, head, body, cut);
    if (!("inHeaders" in cut)) {
      await eventually(async () => server.logs.slice(seen).some((line) => line.url === url), 20000, `${what} ${describe(cut)}: the server to see the request end`);
    }
    let last: unknown;
    try {
      await eventually(async () => {
        last = await holdings(server);
        return JSON.stringify(last) === JSON.stringify(baseline);
      }, 20000, "cleanup");
    } catch {
      assert.deepEqual(last, baseline, `${what} cut ${describe(cut)} left something behind`);
    }
    const faults = server.logs.slice(seen).filter((line) => line.event === "internal_error");
    assert.deepEqual(faults, [], `${what} cut ${describe(cut)}: a client going away is no fault of the server`);
    const list = await fetch(`${server.server.url}/v1/sandboxes`);
    assert.equal(list.status, 200, `${what} cut ${describe(cut)}: the server still answers`);
    await list.arrayBuffer();
    await expectedAfter?.();
  }
}

async function absent(path: string): Promise<void> {
  const ls = await box.exec(["sh", "-c", `test -e ${path} && echo present || echo absent`]);
  assert.equal(ls.stdout.trim(), "absent", `${path} must not exist after a cut upload`);
}

test("a file upload (application/octet-stream) cut anywhere changes nothing and the server keeps serving", async () => {
  const body = Buffer.alloc(4 * 1024 * 1024, 7);
  const url = `/v1/sandboxes/${box.id}/files?path=/tmp/up.bin`;
  await cutEach(a, "octet-stream upload", () => ({
    head: headOf("PUT", url, { "content-type": "application/octet-stream", "content-length": 1000 }),
    body: body.subarray(0, 1000),
    url,
  }), [{ inHeaders: true }, { bodyBytes: 5 }, { bodyBytes: 999 }], () => absent("/tmp/up.bin"));
  await cutEach(a, "large octet-stream upload", () => ({
    head: headOf("PUT", url, { "content-type": "application/octet-stream", "content-length": body.length }),
    body,
    url,
  }), [{ bodyBytes: 1024 * 1024 }, { bodyBytes: body.length - 1 }], () => absent("/tmp/up.bin"));
  // a whole upload afterwards lands, and leaves no temporary file either
  await box.files.write("/tmp/up.bin", body.subarray(0, 1000));
  assert.equal((await box.files.read("/tmp/up.bin")).length, 1000);
  await eventually(async () => (await holdings(a)).tmp.length === 0, 20000, "the upload's temporary file to go");
  await box.exec(["rm", "/tmp/up.bin"]);
});

test("a chunked upload without Content-Length cut mid-body changes nothing", async () => {
  const url = `/v1/sandboxes/${box.id}/files?path=/tmp/chunked.bin`;
  const chunk = Buffer.alloc(64 * 1024, 1);
  const body = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
  await cutEach(a, "chunked upload", () => ({
    head: headOf("PUT", url, { "content-type": "application/octet-stream", "transfer-encoding": "chunked" }),
    body: Buffer.concat([body, body]),
    url,
  }), [{ bodyBytes: 5 }, { bodyBytes: body.length + 100 }], () => absent("/tmp/chunked.bin"));
});

test("a tar upload (application/x-tar) cut anywhere extracts nothing", async () => {
  const pack = tar.pack();
  pack.entry({ name: "first.txt" }, "first member, whole");
  pack.entry({ name: "second.bin" }, Buffer.alloc(2 * 1024 * 1024, 3));
  pack.finalize();
  const body = Buffer.from(await new Response(pack as unknown as ReadableStream).arrayBuffer());
  const url = `/v1/sandboxes/${box.id}/files?path=/tmp/untar`;
  await cutEach(a, "tar upload", () => ({
    head: headOf("PUT", url, { "content-type": "application/x-tar", "content-length": body.length }),
    body,
    url,
  }), [{ inHeaders: true }, { bodyBytes: 5 }, { bodyBytes: 1024 + 512 }, { bodyBytes: body.length - 10 }], () => absent("/tmp/untar"));
});

test("a download cut while the reply streams ends only that request", async () => {
  for (const path of ["/big/file", "/big"]) {
    const url = `/v1/sandboxes/${box.id}/files?path=${path}`;
    await cutEach(a, `download of ${path}`, () => ({ head: headOf("GET", url, {}), body: Buffer.alloc(0), url }), [{ inHeaders: true }, { replyBytes: 1 }, { replyBytes: 1024 * 1024 }]);
  }
});

test("an exec cut while it runs ends the command in the sandbox", async () => {
  for (const route of ["exec", "exec/stream"]) {
    const url = `/v1/sandboxes/${box.id}/${route}`;
    const json = Buffer.from(JSON.stringify({ cmd: ["sh", "-c", "while true; do echo tick-aborts; sleep 0.2; done"] }));
    const cuts: Cut[] = route === "exec" ? [{ inHeaders: true }, { bodyBytes: 5 }] : [{ inHeaders: true }, { bodyBytes: 5 }, { replyBytes: 300 }];
    await cutEach(a, route, () => ({ head: headOf("POST", url, { "content-type": "application/json", "content-length": json.length }), body: json, url }), cuts);
    // a buffered exec cut after its whole request: the client is gone while the command runs
    if (route === "exec") {
      const seen = a.logs.length;
      await cutRequest(a, headOf("POST", url, { "content-type": "application/json", "content-length": json.length }), json, { bodyBytes: json.length });
      await eventually(async () => a.logs.slice(seen).some((line) => line.url === url), 20000, "the exec to see its client go");
    }
    await eventually(async () => !(await box.exec(["ps"])).stdout.includes("tick-aborts"), 20000, `the ${route} command to end`);
  }
});

test("an export cut while the archive streams leaves no zstd and no temporary files", async () => {
  for (const compression of ["zstd", "none"]) {
    const url = `/v1/snapshots/${snapshot.id}/export?compression=${compression}`;
    await cutEach(a, `export (${compression})`, () => ({ head: headOf("GET", url, {}), body: Buffer.alloc(0), url }), [{ inHeaders: true }, { replyBytes: 1 }, { replyBytes: 256 * 1024 }]);
  }
});

test("an import cut anywhere leaves no snapshot, image or staging directory", async () => {
  const url = "/v1/snapshots/import";
  await cutEach(b, "import", () => ({
    head: headOf("POST", url, { "content-type": "application/x-tar", "content-length": archive.length }),
    body: archive,
    url,
  }), [{ inHeaders: true }, { bodyBytes: 5 }, { bodyBytes: 4096 }, { bodyBytes: Math.floor(archive.length / 2) }, { bodyBytes: archive.length - 1 }]);
  await cutEach(b, "zstd import", () => ({
    head: headOf("POST", url, { "content-type": "application/zstd", "content-length": compressed.length }),
    body: compressed,
    url,
  }), [{ bodyBytes: 5 }, { bodyBytes: Math.floor(compressed.length / 2) }, { bodyBytes: compressed.length - 1 }]);
});

test("a build upload cut anywhere queues nothing and leaves no context behind", async () => {
  const pack = tar.pack();
  pack.entry({ name: "Dockerfile" }, `FROM ${baseImage}\nCOPY blob /blob\n`);
  pack.entry({ name: "blob" }, Buffer.alloc(1024 * 1024, 5));
  pack.finalize();
  const context = Buffer.from(await new Response(pack as unknown as ReadableStream).arrayBuffer());
  const boundary = "----strata-aborts";
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="name"\r\n\r\naborted-build\r\n`),
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="context"; filename="context.tar"\r\ncontent-type: application/x-tar\r\n\r\n`),
    context,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const url = "/v1/builds";
  await cutEach(a, "build upload", () => ({
    head: headOf("POST", url, { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": body.length }),
    body,
    url,
  }), [{ inHeaders: true }, { bodyBytes: 5 }, { bodyBytes: 200 }, { bodyBytes: Math.floor(body.length / 2) }, { bodyBytes: body.length - 3 }]);
});

test("a build log (Server-Sent Events) cut while it streams leaves the build running to its end", async () => {
  const form = new FormData();
  const pack = tar.pack();
  pack.entry({ name: "Dockerfile" }, `FROM ${baseImage}\nRUN for i in 1 2 3 4 5 6; do echo step-$i; sleep 0.5; done\n`);
  pack.finalize();
  form.set("context", new Blob([Buffer.from(await new Response(pack as unknown as ReadableStream).arrayBuffer())]), "context.tar");
  form.set("name", "aborts-logs");
  const created = await fetch(`${a.server.url}/v1/builds`, { method: "POST", body: form });
  assert.equal(created.status, 202);
  const { buildId } = (await created.json()) as { buildId: string };
  const url = `/v1/builds/${buildId}/logs`;
  for (const cut of [{ inHeaders: true }, { replyBytes: 1 }] as Cut[]) {
    await cutRequest(a, headOf("GET", url, {}), Buffer.alloc(0), cut);
    assert.equal((await fetch(`${a.server.url}/v1/sandboxes`)).status, 200);
  }
  await eventually(async () => {
    const build = (await (await fetch(`${a.server.url}/v1/builds/${buildId}`)).json()) as { status: string };
    return build.status !== "queued" && build.status !== "running";
  }, 120000, "the build to end");
  const build = (await (await fetch(`${a.server.url}/v1/builds/${buildId}`)).json()) as { status: string; snapshotId?: string };
  assert.equal(build.status, "succeeded");
  await a.strata.snapshots.delete(build.snapshotId!, { force: true });
});

test("a push whose progress stream is cut ends that request alone", async () => {
  const url = `/v1/snapshots/${snapshot.id}/push`;
  const json = Buffer.from("{}");
  for (const cut of [{ inHeaders: true }, { bodyBytes: 1 }, { replyBytes: 1 }] as Cut[]) {
    const seen = a.logs.length;
    await cutRequest(a, headOf("POST", url, { "content-type": "application/json", accept: "application/x-ndjson", "content-length": json.length }), json, cut);
    if (!("inHeaders" in cut)) await eventually(async () => a.logs.slice(seen).some((line) => line.url === url), 60000, "the push to see its client go");
    assert.equal((await fetch(`${a.server.url}/v1/sandboxes`)).status, 200);
  }
  // a whole push still works after the cut ones
  const pushed = await (await a.strata.snapshots.get(snapshot.id)).push();
  assert.match(pushed.info.imageUri ?? "", /@sha256:/);
});
