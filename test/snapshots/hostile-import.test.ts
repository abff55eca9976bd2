// An archive is data, never a command to the engine: imports of crafted
// archives change the engine only by the images their header lists, untagged
// but for Strata's own references; adopt no image the archive does not carry;
// leave nothing when refused; stay within the server's limits; refuse
// ambiguous metadata; and an empty body is refused at once.
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import tar from "tar-stream";
import { Strata } from "@strata/sdk";
import { parseRegistry } from "@strata/server";
import { baseImage, errorCode, startTestServer, type TestServer, test } from "../harness.js";
import { startRegistry } from "../registry.js";

let a: TestServer;
let b: TestServer;
before(async () => {
  a = await startTestServer();
  b = await startTestServer();
});
after(async () => {
  await a.close();
  await b.close();
});

interface Member {
  name: string;
  data: Buffer;
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  return Buffer.from(await new Response(stream).arrayBuffer());
}

async function members(archive: Buffer): Promise<Member[]> {
  const extract = tar.extract();
  const out: Member[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        out.push({ name: header.name, data: Buffer.concat(chunks) });
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

const sha256 = (data: Buffer | string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/** JSON with sorted keys and no whitespace: how manifests are written. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
}

/** A tar of the members with an inventory that lists them truly, so only the change under test is wrong. */
async function pack(list: Member[], extra: Buffer[] = []): Promise<Buffer> {
  const body = list.filter((m) => m.name !== "inventory.json");
  const inventory = Buffer.from(JSON.stringify({ members: body.map((m) => ({ path: m.name, size: m.data.length, sha256: sha256(m.data) })) }));
  const p = tar.pack();
  for (const m of [...body, { name: "inventory.json", data: inventory }]) p.entry({ name: m.name, mode: 0o644 }, m.data);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat([...chunks, ...extra]);
}

async function collect(stream: unknown): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const json = (m: Member) => JSON.parse(m.data.toString("utf8"));
const put = (list: Member[], name: string, value: unknown): Member[] => list.map((m) => (m.name === name ? { name, data: Buffer.from(JSON.stringify(value)) } : m));
const zstd = (bytes: Buffer) => execFileSync("zstd", ["-q", "-c"], { input: bytes, maxBuffer: 1 << 30 });

/** A container snapshot made on server a and exported, its members, and its image id. */
async function containerArchive(name: string): Promise<{ list: Member[]; imageId: string; snapshotId: string; remove: () => Promise<void> }> {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec(`echo ${name} > /mark`);
  const snapshot = await (await source.snapshot({ name })).waitUntilReady();
  await source.delete();
  const list = await members(await bytesOf(await snapshot.export({ compression: "none" })));
  return { list, imageId: snapshot.info.imageId!, snapshotId: snapshot.id, remove: () => snapshot.delete() };
}

const stagingLeft = (server: TestServer) => {
  try {
    return readdirSync(join(server.home, "tmp")).length;
  } catch {
    return 0;
  }
};

test("tags in an archive's images never reach the engine: the base image keeps its tag", async () => {
  const baseId = (await b.server.context.engine.inspectImage(baseImage))!.id;
  const { list, imageId, snapshotId, remove } = await containerArchive("hostile-tags");
  await remove(); // the image leaves the engine, so importing loads it
  const index = json(list.find((m) => m.name === "images/manifest.json")!) as { Config: string; Layers: string[] }[];
  const tagged = put(list, "images/manifest.json", index.map((entry) => ({ ...entry, RepoTags: [baseImage, "strata-test/hostile:evil"] })));
  const layerDir = index[0]!.Layers[index[0]!.Layers.length - 1]!.split("/")[0]!;
  const withRepositories = [...tagged.slice(0, -1), { name: "images/repositories", data: Buffer.from(JSON.stringify({ "strata-test/busybox": { latest: layerDir }, "strata-test/hostile": { evil: layerDir } })) }, tagged[tagged.length - 1]!];
  const result = await b.strata.snapshots.import(new Uint8Array(await pack(withRepositories)));
  try {
    assert.deepEqual(result.imported, [snapshotId]);
    const engine = b.server.context.engine;
    assert.equal((await engine.inspectImage(baseImage))!.id, baseId, "the base image's tag still points at it");
    assert.equal(await engine.inspectImage("strata-test/hostile:evil"), null);
    assert.deepEqual((await engine.inspectImage(imageId))!.repoTags.filter((tag) => !tag.startsWith("strata/snapshots-")), []);
    // and it restores
    const sandbox = await b.strata.sandboxes.create({ snapshotId });
    assert.equal((await sandbox.exec("cat /mark")).stdout, "hostile-tags\n");
    await sandbox.delete();
  } finally {
    await b.strata.snapshots.delete(snapshotId);
  }
  assert.equal(await b.server.context.engine.inspectImage(imageId), null);
});

test("an archive cannot adopt an image it does not carry whole", async () => {
  // the image stays in the engine (server a still has the snapshot)
  const { list, imageId, remove } = await containerArchive("hostile-adopt");
  try {
    const before = await b.strata.snapshots.list();
    const noImages = list.filter((m) => !m.name.startsWith("images/"));
    const index = json(list.find((m) => m.name === "images/manifest.json")!) as { Config: string; Layers: string[] }[];
    const top = `images/${index[0]!.Layers[index[0]!.Layers.length - 1]}`;
    const fakeLayer = list.map((m) => (m.name === top ? { name: top, data: Buffer.alloc(m.data.length, 0) } : m));
    const noConfig = list.filter((m) => m.name !== `images/${index[0]!.Config}`);
    const cases: [string, Buffer, string][] = [
      ["no image members at all", await pack(noImages), "archive_invalid"],
      ["a layer that is not the image's", await pack(fakeLayer), "archive_digest_mismatch"],
      ["no config", await pack(noConfig), "archive_invalid"],
    ];
    for (const [what, archive, code] of cases) {
      assert.equal(await errorCode(b.strata.snapshots.import(new Uint8Array(archive))), code, what);
      assert.deepEqual(await b.strata.snapshots.list(), before, what);
    }
    assert.ok(await b.server.context.engine.inspectImage(imageId), "the image someone else owns is untouched");
    // the same archive whole imports: it carries the image
    const whole = await b.strata.snapshots.import(new Uint8Array(await pack(list)));
    await b.strata.snapshots.delete(whole.snapshot.id);
  } finally {
    await remove();
  }
});

test("a refused import leaves no image the engine loaded, whenever it fails", async () => {
  const baseId = (await b.server.context.engine.inspectImage(baseImage))!.id;
  const { list, imageId, remove } = await containerArchive("hostile-undo");
  await remove();
  const engine = b.server.context.engine;
  const index = json(list.find((m) => m.name === "images/manifest.json")!) as { Config: string; Layers: string[] }[];
  // the engine's own save of the base image, added as a second image the header does not list
  const saved: Buffer[] = [];
  await engine.saveImages([baseId], (piece) => void saved.push(Buffer.from(piece)));
  const baseMembers = (await members(Buffer.concat(saved))).filter((m) => m.data.length && !["manifest.json", "repositories"].includes(m.name));
  const baseIndex = json((await members(Buffer.concat(saved))).find((m) => m.name === "manifest.json")!) as { Config: string; Layers: string[] }[];
  const smuggled = put([
    ...list.slice(0, -1), ...baseMembers.filter((m) => !list.some((l) => l.name === `images/${m.name}`)).map((m) => ({ name: `images/${m.name}`, data: m.data })), list[list.length - 1]!,
  ], "images/manifest.json", [...index, { Config: baseIndex[0]!.Config, Layers: baseIndex[0]!.Layers, RepoTags: ["strata-test/hostile:smuggled"] }]);
  const header = json(list[0]!);
  const unused = put(put(smuggled, "images/manifest.json", [...index, { Config: baseIndex[0]!.Config, Layers: baseIndex[0]!.Layers }]), list[0]!.name, { ...header, images: [...header.images, baseId] });
  const whole = await pack(list);
  const cases: [string, Buffer, string][] = [
    ["an image the header does not list", await pack(smuggled), "archive_invalid"],
    ["an image no snapshot uses", await pack(unused), "archive_invalid"],
    ["a member after the inventory", Buffer.concat([whole.subarray(0, whole.length - 1024), await pack([{ name: "images/late", data: Buffer.from("x") }]).then((t) => t.subarray(0, 1024)), Buffer.alloc(1024)]), "archive_invalid"],
    ["garbage after the zstd frame", Buffer.concat([zstd(whole), Buffer.from("garbage after the frame")]), "archive_invalid"],
    ["data after the tar's end", Buffer.concat([whole, Buffer.alloc(4096, 0x41)]), "archive_invalid"],
    ["a cut end", whole.subarray(0, whole.length - 700), "archive_truncated"],
  ];
  for (const [what, archive, code] of cases) {
    const got = await errorCode(b.strata.snapshots.import(new Uint8Array(archive)));
    assert.ok(got.startsWith("archive_"), `${what}: ${got}`);
    if (what !== "garbage after the zstd frame") assert.equal(got, code, what);
    assert.equal(await engine.inspectImage(imageId), null, `${what} left the archive's image`);
    assert.equal(await engine.inspectImage("strata-test/hostile:smuggled"), null, what);
    assert.equal((await engine.inspectImage(baseImage))!.id, baseId, what);
    assert.equal(stagingLeft(b), 0, what);
  }
});

test("limits: a directory blob past --max-snapshot-bytes is a 413 before it is staged; staging past its bound a 507", async () => {
  const limited = await startTestServer({ maxSnapshotBytes: 64 * 1024 * 1024 });
  const tight = await startTestServer({ maxStagingBytes: 1024 * 1024 });
  try {
    const source = await a.strata.sandboxes.create({ image: baseImage });
    await source.exec("mkdir -p /d && head -c 3000000 /dev/urandom > /d/data");
    const dir = await (await source.snapshotDirectory("/d")).waitUntilReady();
    await source.delete();
    const list = await members(await bytesOf(await dir.export({ compression: "none" })));
    await dir.delete();
    assert.equal(await errorCode(tight.strata.snapshots.import(new Uint8Array(await pack(list)))), "insufficient_storage");
    assert.equal(stagingLeft(tight), 0);

    // 2 GiB of zeros in a tar, as a directory blob: a 1.3 MB upload
    const size = 2 * 1024 ** 3;
    const hash = createHash("sha256");
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    for (let done = 0; done < size; done += zeros.length) hash.update(zeros);
    const digest = `sha256:${hash.digest("hex")}`;
    const manifestMember = list.find((m) => m.name.startsWith("manifests/"))!;
    const manifest = json(manifestMember);
    manifest.content = { ...manifest.content, blobDigest: digest, sizeBytes: size };
    const manifestBytes = Buffer.from(canonical(manifest));
    const header = json(list[0]!);
    header.snapshots[0].digest = sha256(manifestBytes);
    const blobName = `blobs/sha256/${digest.slice("sha256:".length)}`;
    const p = tar.pack();
    p.entry({ name: list[0]!.name }, Buffer.from(JSON.stringify(header)));
    p.entry({ name: manifestMember.name }, manifestBytes);
    const blob = p.entry({ name: blobName, size }) as unknown as NodeJS.WritableStream;
    const compressed: Buffer[] = [];
    const child = (await import("node:child_process")).spawn("zstd", ["-q", "-c", "-1"], { stdio: ["pipe", "pipe", "ignore"] });
    child.stdout.on("data", (chunk: Buffer) => compressed.push(chunk));
    const exited = new Promise((resolve) => child.on("close", resolve));
    (p as unknown as NodeJS.ReadableStream).pipe(child.stdin);
    for (let done = 0; done < size; done += zeros.length) if (!blob.write(zeros)) await new Promise<void>((resolve) => blob.once("drain", () => resolve()));
    blob.end();
    p.finalize();
    await exited;
    const bomb = Buffer.concat(compressed);
    assert.ok(bomb.length < 4 * 1024 * 1024, `the upload is ${bomb.length} bytes`);
    assert.equal(await errorCode(limited.strata.snapshots.import(new Uint8Array(bomb))), "snapshot_too_large");
    assert.equal(stagingLeft(limited), 0);
    assert.equal((await limited.strata.snapshots.list()).snapshots.length, 0);
  } finally {
    await limited.close();
    await tight.close();
  }
});

test("ambiguous metadata is refused: a snapshot, an image or an inventory entry twice", async () => {
  const source = await a.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /amb && echo x > /amb/f");
  const dir = await (await source.snapshotDirectory("/amb", { name: "ambiguous" })).waitUntilReady();
  await source.delete();
  const list = await members(await bytesOf(await dir.export({ compression: "none" })));
  await dir.delete();
  const header = json(list[0]!);
  const twiceInHeader = put(list, list[0]!.name, { ...header, snapshots: [...header.snapshots, header.snapshots[0]] });
  const imageTwice = put(list, list[0]!.name, { ...header, images: [`sha256:${"1".repeat(64)}`, `sha256:${"1".repeat(64)}`] });
  const good = await pack(list);
  // an inventory listing one member twice, built by hand
  const body = list.filter((m) => m.name !== "inventory.json");
  const entries = body.map((m) => ({ path: m.name, size: m.data.length, sha256: sha256(m.data) }));
  const p = tar.pack();
  for (const m of body) p.entry({ name: m.name }, m.data);
  p.entry({ name: "inventory.json" }, JSON.stringify({ members: [...entries, entries[0]] }));
  p.finalize();
  const inventoryTwice = await collect(p);
  const memberTwice = await (async () => {
    const q = tar.pack();
    for (const m of [...body, body[1]!]) q.entry({ name: m.name }, m.data);
    q.finalize();
    return await collect(q);
  })();
  for (const [what, archive] of [["a snapshot twice in the header", await pack(twiceInHeader)], ["an image twice in the header", await pack(imageTwice)], ["an inventory entry twice", inventoryTwice], ["a member twice", memberTwice]] as const) {
    assert.equal(await errorCode(b.strata.snapshots.import(new Uint8Array(archive))), "archive_invalid", what);
  }
  assert.equal((await b.strata.snapshots.list()).snapshots.length, 0);
  assert.equal((await b.strata.snapshots.import(new Uint8Array(good))).imported.length, 1);
  await b.strata.snapshots.delete("ambiguous");
});

test("an empty import is an immediate 400 archive_truncated over every transport, and leaves nothing", async () => {
  const empty = join(b.home, "empty.tar.zst");
  writeFileSync(empty, "");
  for (const type of ["application/zstd", "application/x-tar", "application/octet-stream"]) {
    const reply = await fetch(`${b.server.url}/v1/snapshots/import`, { method: "POST", headers: { "content-type": type }, body: new Uint8Array(0) });
    assert.equal(reply.status, 400, type);
    assert.equal(((await reply.json()) as { error: { code: string } }).error.code, "archive_truncated");
  }
  assert.equal(await errorCode(b.strata.snapshots.importFile(empty)), "archive_truncated");
  const viaFetch = new Strata({ baseUrl: b.server.url, fetch: (input, init) => fetch(input, init) });
  assert.equal(await errorCode(viaFetch.snapshots.importFile(empty)), "archive_truncated");
  assert.equal(await errorCode(b.strata.snapshots.import(new Uint8Array(0))), "archive_truncated");
  assert.equal(stagingLeft(b), 0);
});

test("an archive that claims a pushed snapshot's imageUri is not taken for it: a restore from that imageUri gets what the registry holds", async () => {
  const registry = await startRegistry();
  const pusher = await startTestServer({ registry: parseRegistry(`${registry.host}/team`) });
  try {
    const source = await pusher.strata.sandboxes.create({ image: baseImage });
    await source.exec("echo pushed > /mark");
    const pushed = await (await (await source.snapshot()).waitUntilReady()).push();
    const uri = pushed.info.imageUri!;
    await source.exec("echo forged > /mark");
    const forged = await (await source.snapshot()).waitUntilReady();
    await source.delete();

    // the other snapshot's archive, its manifest rewritten to say it came from the pushed imageUri
    const list = await members(await bytesOf(await forged.export({ compression: "none" })));
    const manifestMember = list.find((m) => m.name.startsWith("manifests/"))!;
    const manifestBytes = Buffer.from(canonical({ ...json(manifestMember), origin: { imageUri: uri } }));
    const header = json(list[0]!);
    header.snapshots[0].digest = sha256(manifestBytes);
    const claimed = put(list, list[0]!.name, header).map((m) => (m.name === manifestMember.name ? { name: m.name, data: manifestBytes } : m));
    const imported = await b.strata.snapshots.import(new Uint8Array(await pack(claimed)));
    assert.equal(imported.snapshot.info.origin?.imageUri, uri, "the import kept the claim (it is the archive's data)");

    const restored = await b.strata.sandboxes.create({ imageUri: uri });
    try {
      assert.equal((await restored.exec(["cat", "/mark"])).stdout, "pushed\n", "the restore holds what the registry has under the imageUri");
      assert.notEqual(restored.info.snapshotId, imported.snapshot.id);
    } finally {
      await restored.delete();
      for (const id of new Set([restored.info.snapshotId!, ...imported.imported])) await b.strata.snapshots.delete(id, { force: true }).catch(() => undefined);
    }
  } finally {
    await pusher.close();
    await registry.close();
  }
});
