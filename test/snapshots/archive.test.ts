// An operator exports snapshots on one server and imports them on another,
// verified; tampered or truncated archives are refused and leave nothing.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import tar from "tar-stream";
import { Strata } from "@strata/sdk";
import { baseImage, closeAll, errorCode, startTestServer, type TestServer, test } from "../harness.js";

let a: TestServer;
let b: TestServer;
before(async () => {
  a = await startTestServer();
  b = await startTestServer();
});
after(() => closeAll(a, b));

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  return Buffer.from(await new Response(stream).arrayBuffer());
}

interface Member {
  name: string;
  type: string;
  data: Buffer;
  linkname?: string;
}

async function members(archive: Buffer): Promise<Member[]> {
  const extract = tar.extract();
  const out: Member[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        out.push({ name: header.name, type: header.type ?? "file", data: Buffer.concat(chunks), ...(header.linkname ? { linkname: header.linkname } : {}) });
        next();
      });
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  extract.end(archive);
  await done;
  return out;
}

async function pack(list: Member[]): Promise<Buffer> {
  const p = tar.pack();
  for (const m of list) {
    if (m.type === "symlink") p.entry({ name: m.name, type: "symlink", linkname: m.linkname });
    else p.entry({ name: m.name, mode: 0o644 }, m.data);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function flipped(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  const at = Math.floor(copy.length / 2);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}

/** What an import could leave behind: records, blobs, staging files, and the archive's own images. */
async function state(server: TestServer, imageIds: string[] = []) {
  const images = (await Promise.all(imageIds.map((id) => server.server.context.engine.inspectImage(id)))).filter(Boolean);
  return {
    snapshots: (await server.strata.snapshots.list()).snapshots.length,
    blobs: readdirSync(join(server.home, "blobs", "sha256")).length,
    tmp: (() => {
      try {
        return readdirSync(join(server.home, "tmp")).length;
      } catch {
        return 0;
      }
    })(),
    images: images.length,
  };
}

test("export on one server, import on another with its own home, restore and find the files", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /work && echo exported > /work/file && head -c 300000 /dev/urandom > /work/blob && md5sum /work/blob > /sum");
  const whole = await (await source.snapshot({ name: "to-carry" })).waitUntilReady();
  const dir = await (await source.snapshotDirectory("/work", { name: "dir-to-carry" })).waitUntilReady();
  const verified = await whole.verify();
  assert.ok(verified.ok, JSON.stringify(verified));
  assert.ok(verified.parts.some((p) => p.part === "layer"));

  const wholeArchive = await bytesOf(await whole.export());
  assert.deepEqual([...wholeArchive.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], "zstd by default");
  let seen = 0;
  const dirArchive = await bytesOf(await dir.export({ compression: "none", onProgress: (n) => (seen = n) }));
  assert.equal(seen, dirArchive.length);
  const names = (await members(dirArchive)).map((m) => m.name);
  assert.equal(names[0], "strata-archive.json");
  assert.equal(names[names.length - 1], "inventory.json");

  // the images leave this engine
  await source.delete();
  await whole.delete();
  await dir.delete();
  assert.equal(await errorCode(a.strata.snapshots.get("to-carry")), "snapshot_not_found");

  const imported = await b.strata.snapshots.import(new Uint8Array(wholeArchive));
  assert.deepEqual(imported.imported, [whole.id]);
  assert.equal(imported.snapshot.info.digest, whole.info.digest);
  assert.equal(imported.snapshot.info.name, "to-carry");
  assert.equal(imported.snapshot.info.imageId, whole.info.imageId);
  const importedDir = await b.strata.snapshots.import(new Uint8Array(dirArchive));
  assert.equal(importedDir.snapshot.info.contentDigest, dir.info.contentDigest);
  assert.ok((await importedDir.snapshot.verify()).ok);
  assert.ok((await imported.snapshot.verify()).ok);

  const restored = await b.strata.sandboxes.create({ snapshotId: "to-carry", directorySnapshots: [{ snapshotId: "dir-to-carry", path: "/copy" }] });
  assert.equal((await restored.exec("cat /work/file")).stdout, "exported\n");
  assert.equal((await restored.exec("md5sum -c /sum")).exitCode, 0);
  assert.equal((await restored.exec("cat /copy/file")).stdout, "exported\n");
  await restored.delete();

  // importing again changes nothing
  const again = await b.strata.snapshots.import(new Uint8Array(wholeArchive));
  assert.deepEqual(again.imported, []);
  assert.deepEqual(again.skipped, [whole.id]);
  await b.strata.snapshots.delete("to-carry");
  await b.strata.snapshots.delete("dir-to-carry");
});

test("a chain exported with its parents keeps its digests and lineage", async () => {
  const s1 = await a.strata.sandboxes.create({ image: baseImage });
  await s1.exec("echo one > /gen");
  const one = await (await s1.snapshot({ name: "chain-1" })).waitUntilReady();
  const s2 = await a.strata.sandboxes.create({ snapshotId: one.id });
  await s2.exec("echo two >> /gen");
  const two = await (await s2.snapshot({ name: "chain-2" })).waitUntilReady();
  const s3 = await a.strata.sandboxes.create({ snapshotId: two.id });
  await s3.exec("echo three >> /gen");
  const three = await (await s3.snapshot({ name: "chain-3" })).waitUntilReady();
  const archive = await bytesOf(await three.export({ withParents: true, withImage: true }));
  for (const s of [s1, s2, s3]) await s.delete();
  for (const s of [three, two, one]) await s.delete();

  const result = await b.strata.snapshots.import(new Uint8Array(archive));
  assert.deepEqual(result.imported, [one.id, two.id, three.id]);
  const got = await Promise.all(["chain-1", "chain-2", "chain-3"].map((n) => b.strata.snapshots.get(n)));
  assert.deepEqual(got.map((s) => s.info.digest), [one.info.digest, two.info.digest, three.info.digest]);
  assert.equal(got[1]!.info.parent, one.id);
  assert.equal(got[2]!.info.parent, two.id);
  assert.equal(got[2]!.info.parentDigest, two.info.digest);
  const restored = await b.strata.sandboxes.create({ snapshotId: "chain-3" });
  assert.equal((await restored.exec("cat /gen")).stdout, "one\ntwo\nthree\n");
  await restored.delete();
  assert.equal(await errorCode(got[0]!.delete()), "snapshot_has_children");
  for (const s of got.reverse()) await s.delete();
});

test("tampered, unsafe and truncated archives are refused and leave nothing", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /t && head -c 50000 /dev/urandom > /t/data");
  const whole = await (await source.snapshot({ name: "tamper-whole" })).waitUntilReady();
  const dir = await (await source.snapshotDirectory("/t", { name: "tamper-dir" })).waitUntilReady();
  const wholeMembers = await members(await bytesOf(await whole.export({ compression: "none" })));
  const dirMembers = await members(await bytesOf(await dir.export({ compression: "none" })));
  await source.delete();
  await whole.delete();
  await dir.delete();

  const replace = (list: Member[], pick: (m: Member) => boolean, change: (m: Member) => Member) => list.map((m) => (pick(m) ? change(m) : m));
  const cases: [string, Buffer, string][] = [
    ["a flipped byte in a blob", await pack(replace(dirMembers, (m) => m.name.startsWith("blobs/"), (m) => ({ ...m, data: flipped(m.data) }))), "archive_digest_mismatch"],
    ["a flipped byte in a layer", await pack(replace(wholeMembers, (m) => m.name.endsWith("/layer.tar") && m.data.length > 10000, (m) => ({ ...m, data: flipped(m.data) }))), "archive_digest_mismatch"],
    ["a flipped byte in a manifest", await pack(replace(dirMembers, (m) => m.name.startsWith("manifests/"), (m) => ({ ...m, data: flipped(m.data) }))), "archive_digest_mismatch"],
    ["a ../ member", await pack([...dirMembers.slice(0, -1), { name: "../escape", type: "file", data: Buffer.from("x") }, dirMembers[dirMembers.length - 1]!]), "archive_unsafe_path"],
    ["an absolute member", await pack([dirMembers[0]!, { name: "/etc/evil", type: "file", data: Buffer.from("x") }, ...dirMembers.slice(1)]), "archive_unsafe_path"],
    ["a symlink member", await pack([dirMembers[0]!, { name: "images/link", type: "symlink", data: Buffer.alloc(0), linkname: "/etc/passwd" }, ...dirMembers.slice(1)]), "archive_unsafe_path"],
    ["an unlisted member", await pack([...dirMembers.slice(0, -1), { name: "images/extra", type: "file", data: Buffer.from("x") }, dirMembers[dirMembers.length - 1]!]), "archive_invalid"],
  ];
  const full = await pack(wholeMembers);
  cases.push(["a truncated archive", full.subarray(0, Math.floor(full.length * 0.6)), "archive_truncated"]);
  // the same refusals through zstd, which is how archives usually come
  const zstd = (bytes: Buffer) => execFileSync("zstd", ["-q", "-c"], { input: bytes, maxBuffer: 1 << 30 });
  const compressed = zstd(full);
  cases.push(["a compressed archive cut short", compressed.subarray(0, Math.floor(compressed.length * 0.6)), "archive_truncated"]);
  cases.push(["a compressed archive with a flipped byte in a layer", zstd(cases[1]![1]), "archive_digest_mismatch"]);
  cases.push(["a compressed archive with a symlink member", zstd(cases[5]![1]), "archive_unsafe_path"]);
  cases.push(["an archive cut before its inventory", await pack(wholeMembers.slice(0, -1)), "archive_truncated"]);

  const imageIds = [whole.info.imageId!];
  const before = await state(b, imageIds);
  assert.equal(before.images, 0);
  for (const [what, archive, code] of cases) {
    assert.equal(await errorCode(b.strata.snapshots.import(new Uint8Array(archive))), code, what);
    assert.deepEqual(await state(b, imageIds), before, `${what} left something behind`);
  }
  // the untouched archives still import
  assert.equal((await b.strata.snapshots.import(new Uint8Array(await pack(dirMembers)))).imported.length, 1);
  await b.strata.snapshots.delete("tamper-dir");
});

test("a different snapshot under an existing name is a 409", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /n && echo a > /n/f");
  const theirs = await (await source.snapshotDirectory("/n", { name: "taken-name" })).waitUntilReady();
  const archive = await bytesOf(await theirs.export());
  const local = await b.strata.sandboxes.create({ image: baseImage });
  await local.exec("mkdir -p /n && echo b > /n/f");
  const mine = await (await local.snapshotDirectory("/n", { name: "taken-name" })).waitUntilReady();
  assert.equal(await errorCode(b.strata.snapshots.import(new Uint8Array(archive))), "snapshot_name_taken");
  assert.equal((await b.strata.snapshots.get("taken-name")).id, mine.id);
  await mine.delete();
  await local.delete();
  await theirs.delete();
  await source.delete();
});

test("reindex rebuilds the index from the manifests, reporting malformed ones", async () => {
  const source = await b.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /r && echo r > /r/f");
  const kept = await (await source.snapshotDirectory("/r", { name: "reindexed" })).waitUntilReady();
  b.server.context.index.deleteSnapshot(kept.id);
  assert.equal(await errorCode(b.strata.snapshots.get("reindexed")), "snapshot_not_found");
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const bad = "11111111-1111-4111-8111-111111111111";
  mkdirSync(join(b.home, "snapshots", bad));
  writeFileSync(join(b.home, "snapshots", bad, "manifest.json"), "{not json");
  const report = await b.strata.snapshots.reindex();
  assert.ok(report.malformed.some((m) => m.id === bad));
  assert.equal((await b.strata.snapshots.get("reindexed")).info.digest, kept.info.digest);
  const { rmSync } = await import("node:fs");
  rmSync(join(b.home, "snapshots", bad), { recursive: true });
  await kept.delete();
  await source.delete();
});

/** zstd processes this test process (and so its servers) has running. */
function zstdChildren(): number {
  let count = 0;
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (stat.includes("(zstd)") && Number(fields[1]) === process.pid) count++;
    } catch {
      // gone meanwhile
    }
  }
  return count;
}

async function settles(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${what} did not settle`);
}

test("an export or an import the client cuts off leaves no process, staging file or image behind", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("head -c 40000000 /dev/urandom > /big");
  const snapshot = await (await source.snapshot({ name: "cut-off" })).waitUntilReady();
  await source.delete();
  const archive = await bytesOf(await snapshot.export());

  const controller = new AbortController();
  const reader = (await snapshot.export({ signal: controller.signal })).getReader();
  await reader.read();
  controller.abort();
  await reader.read().catch(() => undefined);
  await settles("the cut export", () => zstdChildren() === 0 && readdirSync(join(a.home, "tmp")).length === 0);

  const imageIds = [snapshot.info.imageId!];
  await snapshot.delete();
  const before = await state(b, imageIds);
  assert.equal(before.images, 0);
  // half the archive goes, then the stream stays open; the cut comes once the server is staging and has taken that half
  const upload = new AbortController();
  const half = Math.floor(archive.length / 2);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(stream) {
      if (sent >= half) return new Promise<void>(() => {});
      const piece = new Uint8Array(archive.subarray(sent, Math.min(half, sent + 64 * 1024)));
      sent += piece.length;
      stream.enqueue(piece);
    },
  }, { highWaterMark: 0 });
  const importing = errorCode(b.strata.snapshots.import(body, { signal: upload.signal }));
  await settles("the import to take half the archive", () => sent >= half && existsSync(join(b.home, "tmp")) && readdirSync(join(b.home, "tmp")).length > 0);
  upload.abort();
  assert.notEqual(await importing, "no error");
  await settles("the cut import", async () => zstdChildren() === 0 && JSON.stringify(await state(b, imageIds)) === JSON.stringify(before));
  // and the whole archive still imports
  assert.deepEqual((await b.strata.snapshots.import(new Uint8Array(archive))).imported, [snapshot.id]);
  await b.strata.snapshots.delete("cut-off");
});

test("the SDK moves archives to and from files, over its own transport or a given fetch", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /f && head -c 2000000 /dev/urandom > /f/data && md5sum /f/data > /f/sum");
  const snapshot = await (await source.snapshotDirectory("/f", { name: "via-files" })).waitUntilReady();
  await source.delete();
  const file = join(a.home, "via-files.tar.zst");
  let received = 0;
  const { bytes } = await snapshot.exportToFile(file, { onProgress: (n) => (received = n) });
  assert.equal(bytes, statSync(file).size);
  assert.equal(received, bytes);
  assert.ok(!existsSync(`${file}.partial`));

  let sent = 0;
  const viaFetch = new Strata({ baseUrl: b.server.url, fetch: (input, init) => fetch(input, init) });
  const result = await viaFetch.snapshots.importFile(file, { onProgress: (n) => (sent = n) });
  assert.equal(sent, bytes);
  assert.deepEqual(result.imported, [snapshot.id]);
  assert.equal(result.snapshot.info.contentDigest, snapshot.info.contentDigest);
  // a refusal comes back as the server's error over either transport
  const junk = join(a.home, "junk.tar");
  writeFileSync(junk, Buffer.alloc(4096, 0x41));
  assert.equal(await errorCode(b.strata.snapshots.importFile(junk)), "archive_invalid");
  assert.equal(await errorCode(viaFetch.snapshots.importFile(junk)), "archive_invalid");
  const again = join(a.home, "again.tar.zst");
  const overFetch = new Strata({ baseUrl: a.server.url, fetch: (input, init) => fetch(input, init) });
  assert.equal((await (await overFetch.snapshots.get(snapshot.id)).exportToFile(again)).bytes, statSync(again).size);
  await b.strata.snapshots.delete("via-files");
  await snapshot.delete();
  // an export that fails leaves no partial file
  assert.equal(await errorCode(snapshot.exportToFile(again)), "snapshot_not_found");
  assert.ok(!existsSync(`${again}.partial`));
});
