// Builds send what the user meant: the Dockerfile goes even when .dockerignore
// excludes its directory, hard links stay links, a tar uploaded by any client
// has its .dockerignore applied, the base-image check reads Dockerfiles as the
// engine does, and broken multipart uploads are a 4xx.
import { linkSync, readdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import tar from "tar-stream";
import { packContext } from "@strata/sdk";
import { context, removeContexts } from "./contexts.js";
import { baseImage, errorCode, eventually, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
  removeContexts();
});


async function bytes(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The members of a tar: name, type and link target. */
async function listing(archive: Buffer): Promise<{ name: string; type: string; linkname?: string }[]> {
  const extract = tar.extract();
  const out: { name: string; type: string; linkname?: string }[] = [];
  extract.on("entry", (header, stream, next) => {
    out.push({ name: header.name, type: header.type ?? "file", ...(header.linkname ? { linkname: header.linkname } : {}) });
    stream.on("end", next);
    stream.resume();
  });
  const done = new Promise<void>((resolve, reject) => extract.on("finish", () => resolve()).on("error", reject));
  extract.end(archive);
  await done;
  return out;
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  return bytes(pack as unknown as NodeJS.ReadableStream);
}

/** Runs `script` in a sandbox of the snapshot and returns its output. */
async function inSnapshot(snapshotId: string, script: string): Promise<string> {
  const sandbox = await t.strata.sandboxes.create({ snapshotId });
  try {
    return (await sandbox.exec(script)).stdout;
  } finally {
    await sandbox.delete();
  }
}

test("a Dockerfile in a directory .dockerignore excludes is still sent, and that directory's other files are not", async () => {
  const dir = context({
    "Docker/Dockerfile.debug": `FROM ${baseImage}\nCOPY . /ctx\n`,
    "Docker/notes.txt": "excluded",
    ".dockerignore": "Docker/\n",
    "app.txt": "kept",
  });
  const names = (await listing(gunzipSync(await bytes(packContext(dir, "Docker/Dockerfile.debug"))))).map((m) => m.name);
  assert.ok(names.includes("Docker/Dockerfile.debug"), names.join(" "));
  assert.ok(!names.includes("Docker/notes.txt"));
  const snapshot = await t.strata.snapshots.build({ context: dir, dockerfile: "Docker/Dockerfile.debug" });
  try {
    // the engine itself leaves the excluded Dockerfile and .dockerignore out of COPY
    assert.equal(await inSnapshot(snapshot.id, "cd /ctx && find . -type f | sort"), "./.dockerignore\n./app.txt\n");
  } finally {
    await snapshot.delete();
  }
});

test("hard links in a context directory are packed and built as hard links", async () => {
  const dir = context({ Dockerfile: `FROM ${baseImage}\nCOPY data /data\n`, "data/a": "same content" });
  linkSync(join(dir, "data/a"), join(dir, "data/b"));
  linkSync(join(dir, "data/a"), join(dir, "data/c"));
  const members = await listing(gunzipSync(await bytes(packContext(dir))));
  assert.deepEqual(members.filter((m) => m.name.startsWith("data/") && m.type !== "directory"), [
    { name: "data/a", type: "file" },
    { name: "data/b", type: "link", linkname: "data/a" },
    { name: "data/c", type: "link", linkname: "data/a" },
  ]);
  const snapshot = await t.strata.snapshots.build({ context: dir });
  try {
    // one inode with three links
    assert.match(await inSnapshot(snapshot.id, "stat -c '%h %i' /data/a /data/b /data/c | sort -u"), /^3 \d+\n$/);
  } finally {
    await snapshot.delete();
  }
});

test("a context sent as a tar has its .dockerignore applied on the server", async () => {
  const archive = await tarOf({
    Dockerfile: `FROM ${baseImage}\nCOPY . /ctx\n`,
    ".dockerignore": "secret\n*.log\n!keep.log\n",
    "secret/key": "never in the image",
    "app/main.sh": "echo hi",
    "debug.log": "excluded",
    "keep.log": "re-included",
  });
  const snapshot = await t.strata.snapshots.build({ context: new Uint8Array(archive) });
  try {
    assert.equal(await inSnapshot(snapshot.id, "cd /ctx && find . -type f | sort"), "./.dockerignore\n./Dockerfile\n./app/main.sh\n./keep.log\n");
  } finally {
    await snapshot.delete();
  }
});

test("a hard link kept in an uploaded tar whose target .dockerignore excludes keeps the content", async () => {
  const pack = tar.pack();
  pack.entry({ name: "Dockerfile" }, `FROM ${baseImage}\nCOPY . /ctx\n`);
  pack.entry({ name: ".dockerignore" }, "hidden\n");
  pack.entry({ name: "hidden" }, "shared");
  pack.entry({ name: "shown", type: "link", linkname: "hidden" });
  pack.entry({ name: "also", type: "link", linkname: "hidden" });
  pack.finalize();
  const snapshot = await t.strata.snapshots.build({ context: new Uint8Array(await bytes(pack as unknown as NodeJS.ReadableStream)) });
  try {
    assert.equal(await inSnapshot(snapshot.id, "cd /ctx && ls && cat shown also && stat -c %h shown"), "Dockerfile\nalso\nshown\nsharedshared2\n");
  } finally {
    await snapshot.delete();
  }
});

test("the base-image check reads the Dockerfile as the engine does", async () => {
  const [repo, tag] = baseImage.split(":");
  const dir = context({ Dockerfile: `# escape=\`\nARG REPO='${repo}'\nARG REF="\${REPO}:${tag}"\nFROM $REF AS base\nRUN echo built > /x\n` });
  const snapshot = await t.strata.snapshots.build({ context: dir });
  try {
    assert.equal(await inSnapshot(snapshot.id, "cat /x"), "built\n");
    assert.equal(snapshot.info.baseImage.ref, baseImage);
  } finally {
    await snapshot.delete();
  }
});

/** Posts a raw multipart body and returns the status and error code. */
function postRaw(body: Buffer, boundary: string): Promise<{ status: number; code?: string }> {
  const url = new URL(`${t.server.url}/v1/builds`);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text || "{}") as { error?: { code: string } }).error?.code });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("a multipart upload cut short is a 400 and too many parts a 413, leaving no build behind", async () => {
  const boundary = "strata-test-boundary";
  const archive = await tarOf({ Dockerfile: `FROM ${baseImage}\n`, "big.bin": "x".repeat(100000) });
  const part = (name: string, value: string | Buffer, filename?: string) => Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"${filename ? `; filename="${filename}"` : ""}\r\n\r\n`),
    Buffer.from(value), Buffer.from("\r\n"),
  ]);
  const whole = Buffer.concat([part("name", "cut"), part("context", archive, "context.tar"), Buffer.from(`--${boundary}--\r\n`)]);
  const builds = () => readdirSync(join(t.home, "builds")).length;
  const before = builds();
  for (const at of [60, 200, Math.floor(whole.length / 2), whole.length - 10]) {
    const reply = await postRaw(whole.subarray(0, at), boundary);
    assert.equal(reply.status, 400, `cut at ${at}: ${JSON.stringify(reply)}`);
    assert.equal(reply.code, "bad_request");
  }
  const manyFields = Buffer.concat([...Array.from({ length: 40 }, (_, i) => part("labels", "{}")), part("context", archive, "context.tar"), Buffer.from(`--${boundary}--\r\n`)]);
  assert.deepEqual(await postRaw(manyFields, boundary), { status: 413, code: "payload_too_large" });
  const twoFiles = Buffer.concat([part("context", archive, "a.tar"), part("context", archive, "b.tar"), Buffer.from(`--${boundary}--\r\n`)]);
  assert.equal((await postRaw(twoFiles, boundary)).status, 413);
  const bigField = Buffer.concat([part("buildArgs", JSON.stringify({ A: "x".repeat(1100 * 1024) })), part("context", archive, "context.tar"), Buffer.from(`--${boundary}--\r\n`)]);
  assert.deepEqual(await postRaw(bigField, boundary), { status: 413, code: "payload_too_large" });
  // a client that goes away in the middle of the context
  const cut = request(new URL(`${t.server.url}/v1/builds`), { method: "POST", agent: false, headers: { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": String(whole.length) } });
  cut.on("error", () => undefined);
  await new Promise<void>((resolve) => cut.write(whole.subarray(0, Math.floor(whole.length / 2)), () => resolve()));
  await eventually(async () => builds() === before + 1, 15000, "the server to start reading the upload");
  cut.destroy();
  await eventually(async () => builds() === before, 15000, "the cut upload's build directory to go");
  assert.equal(builds(), before);
  assert.deepEqual(t.logs.filter((line) => line.event === "internal_error" && line.url === "/v1/builds"), [], "no failure of the form is the server's own");
  // and the server still answers
  assert.equal(await errorCode(t.strata.snapshots.build({ context: new Uint8Array(await tarOf({ Dockerfile: "FROM strata-test/none:1\n" })) })), "image_not_found");
});
