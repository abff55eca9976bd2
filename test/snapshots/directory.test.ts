// A user captures directories of sandboxes and restores them into new ones.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { baseImage, errorCode, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

const blobFiles = (server: TestServer) => readdirSync(join(server.home, "blobs", "sha256"));
const tempFiles = (server: TestServer) => readdirSync(join(server.home, "blobs", "tmp"));

/**
 * Records the paths the server puts through the engine's archive API while
 * fn runs (the real engine still does the work): which restore path was taken.
 */
async function archivePuts<T>(server: TestServer, fn: () => Promise<T>): Promise<{ result: T; puts: string[] }> {
  const engine = server.server.context.engine;
  const putArchive = engine.putArchive;
  const puts: string[] = [];
  engine.putArchive = (containerId, path, ...rest) => {
    puts.push(path);
    return putArchive.call(engine, containerId, path, ...rest);
  };
  try {
    return { result: await fn(), puts };
  } finally {
    engine.putArchive = putArchive;
  }
}

/** A command that keeps the sandbox alive and records what it saw when it started. */
const witness = (path: string) => ["sh", "-c", `ls -la ${path} > /tmp/seen-at-start 2>&1; exec cat`];

test("round trip keeps bytes, symlinks, permissions and owners; contents are there before the command starts", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec([
    "sh", "-c",
    [
      "mkdir -p /data/sub/deeper /data/empty",
      "head -c 300000 /dev/urandom > /data/random.bin",
      "printf 'hello' > /data/sub/deeper/hello.txt",
      "ln -s sub/deeper/hello.txt /data/link",
      "printf 'shared' > /data/sub/original && ln /data/sub/original /data/hardlink",
      "chown 1234:5678 /data/sub/deeper/hello.txt",
      "chmod 0750 /data/sub",
      "chmod 4711 /data/random.bin",
      "md5sum /data/random.bin > /tmp/sum",
    ].join(" && "),
  ]);
  const sum = (await source.exec("cut -d' ' -f1 /tmp/sum")).stdout;
  const snapshot = await (await source.snapshotDirectory("/data", { name: "data-dir" })).waitUntilReady();
  const info = snapshot.info;
  assert.equal(info.kind, "directory");
  assert.equal(info.path, "/data");
  assert.match(info.contentDigest!, /^sha256:[0-9a-f]{64}$/);
  assert.match(info.digest!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(info.fileCount, 5);
  assert.ok(info.sizeBytes! > 300000);
  assert.ok(info.storedBytes! > 0);
  assert.equal(info.imageUri, undefined);
  assert.ok(blobFiles(t).includes(info.contentDigest!.slice("sha256:".length)));

  // runc: extracted on the host into the container's writable layer, not through the engine
  const { result: restored, puts } = await archivePuts(t, () =>
    t.strata.sandboxes.create({ image: baseImage, cmd: witness("/data/sub/deeper"), directorySnapshots: [{ snapshotId: "data-dir" }] }));
  assert.deepEqual(puts, []);
  assert.deepEqual(restored.info.directorySnapshots, [{ snapshotId: snapshot.id, path: "/data" }]);
  assert.match((await restored.exec("cat /tmp/seen-at-start")).stdout, /hello\.txt/);
  assert.equal((await restored.exec("md5sum /data/random.bin | cut -d' ' -f1")).stdout, sum);
  assert.equal((await restored.exec("cat /data/link")).stdout, "hello");
  assert.equal((await restored.exec("readlink /data/link")).stdout, "sub/deeper/hello.txt\n");
  assert.equal((await restored.exec("stat -c '%u:%g' /data/sub/deeper/hello.txt")).stdout, "1234:5678\n");
  assert.equal((await restored.exec("stat -c '%a' /data/sub")).stdout, "750\n");
  assert.equal((await restored.exec("stat -c '%a' /data/random.bin")).stdout, "4711\n");
  assert.equal((await restored.exec("stat -c '%h' /data/hardlink")).stdout, "2\n");
  assert.equal((await restored.exec("cat /data/hardlink")).stdout, "shared");
  assert.equal((await restored.exec("test -d /data/empty && echo yes")).stdout, "yes\n");
  await restored.delete();
  await source.delete();
  await snapshot.delete();
  assert.ok(!blobFiles(t).includes(info.contentDigest!.slice("sha256:".length)), "the blob went with its only snapshot");
});

test("several directories, custom paths, nested restores applied parent first, beside a container snapshot", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec(["sh", "-c", "mkdir -p /app/config /etc/conf && echo parent > /app/config/file && echo app > /app/main && echo child > /etc/conf/file && echo base > /base-marker"]);
  const app = await (await source.snapshotDirectory("/app")).waitUntilReady();
  const conf = await (await source.snapshotDirectory("/etc/conf")).waitUntilReady();
  const whole = await (await source.snapshot()).waitUntilReady();
  const sandboxesBefore = (await t.strata.sandboxes.list()).length;
  const containersBefore = await t.containers();

  const target = await t.strata.sandboxes.create({
    snapshotId: whole.id,
    directorySnapshots: [
      { snapshotId: conf.id, path: "/srv/app/config" },
      { snapshotId: app.id, path: "/srv/app" },
      { snapshotId: app.id, path: "/elsewhere/copy" },
    ],
  });
  assert.equal((await target.exec("cat /srv/app/config/file")).stdout, "child\n");
  assert.equal((await target.exec("cat /srv/app/main")).stdout, "app\n");
  assert.equal((await target.exec("cat /elsewhere/copy/config/file")).stdout, "parent\n");
  assert.equal((await target.exec("cat /base-marker")).stdout, "base\n");
  await target.delete();

  assert.equal(
    await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: app.id, path: "/x" }, { snapshotId: conf.id, path: "/x/" }] })),
    "bad_request",
  );
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: app.id, path: "/" }] })), "bad_request");
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: app.id, path: "relative" }] })), "bad_request");
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: whole.id }] })), "bad_request");
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: "nope" }] })), "snapshot_not_found");
  assert.equal(await errorCode(t.strata.sandboxes.create({ snapshotId: app.id })), "bad_request");
  assert.equal((await t.strata.sandboxes.list()).length, sandboxesBefore, "a refused restore left a sandbox");
  assert.equal(await t.containers(), containersBefore, "a refused restore left a container");
  for (const s of [app, conf, whole]) await s.delete();
  await source.delete();
});

test("a stopped source, excludes, and a capture of /", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec(["sh", "-c", "mkdir -p /proj/node_modules/x /proj/src /proj/cache/a && echo code > /proj/src/main.js && echo dep > /proj/node_modules/x/i.js && echo l > /proj/src/debug.log && echo c > /proj/cache/a/b && echo keep > /proj/keep.log.txt"]);
  await source.stop({ timeoutSeconds: 1 });
  const snapshot = await (await source.snapshotDirectory("/proj", { exclude: ["node_modules", "**/*.log", "cache/**"] })).waitUntilReady();
  assert.deepEqual(snapshot.info.exclude, ["node_modules", "**/*.log", "cache/**"]);
  assert.equal((await source.refresh()).status, "stopped");
  const restored = await t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: snapshot.id }] });
  const listing = (await restored.exec("cd /proj && find . | sort")).stdout.split("\n").filter(Boolean);
  // `cache/**` takes the directory with everything in it, as `node_modules` does
  assert.deepEqual(listing, [".", "./keep.log.txt", "./src", "./src/main.js"]);

  await source.start();
  const root = await (await source.snapshotDirectory("/", { exclude: ["bin", "proc", "sys", "dev", "usr", "sbin", "etc"] })).waitUntilReady();
  assert.equal(root.info.path, "/");
  const fromRoot = await t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: root.id, path: "/old-root" }] });
  assert.equal((await fromRoot.exec("cat /old-root/proj/src/main.js")).stdout, "code\n");
  assert.equal((await fromRoot.exec("test -e /old-root/bin || echo absent")).stdout, "absent\n");
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: root.id }] })), "bad_request");
  for (const s of [restored, fromRoot, source]) await s.delete();
  await snapshot.delete();
  await root.delete();
});

test("links in the path resolve inside the sandbox; links in the directory stay links", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  // from the host these would lead to the host's /etc; the capture must read the sandbox's
  await source.exec("echo mine > /etc/strata-marker && mkdir -p /d/sub /e && ln -s ../../../../../.. /e/up && ln -s / /root-link && ln -s /etc /d/etc-link && ln -s sub /d/inner && ln -s ../../.. /d/sub/up");
  const etc = await (await source.snapshotDirectory("/e/up/root-link/etc")).waitUntilReady();
  assert.equal(etc.info.path, "/e/up/root-link/etc");
  const links = await (await source.snapshotDirectory("/d")).waitUntilReady();
  const restored = await t.strata.sandboxes.create({
    image: baseImage,
    directorySnapshots: [{ snapshotId: etc.id, path: "/captured-etc" }, { snapshotId: links.id, path: "/captured-d" }],
  });
  assert.equal((await restored.exec("cat /captured-etc/strata-marker")).stdout, "mine\n");
  const listing = (sandbox: typeof source, dir: string) => sandbox.exec(`cd ${dir} && ls -A`).then((r) => r.stdout);
  assert.equal(await listing(restored, "/captured-etc"), await listing(source, "/etc"));
  // a relative link that climbs out of the directory is restored as it was
  assert.equal((await restored.exec("readlink /captured-d/etc-link; readlink /captured-d/inner; readlink /captured-d/sub/up")).stdout, "/etc\nsub\n../../..\n");
  for (const s of [restored, source]) await s.delete();
  await etc.delete();
  await links.delete();
});

test("a restore merges with what the image holds there and follows the image's links", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /real/sub /d/sub && echo base > /real/keep && echo old > /real/sub/replaced && ln -s /real /link && echo new > /d/added && echo new > /d/sub/replaced");
  const image = await (await source.snapshot()).waitUntilReady();
  const dir = await (await source.snapshotDirectory("/d")).waitUntilReady();
  const restored = await t.strata.sandboxes.create({ snapshotId: image.id, directorySnapshots: [{ snapshotId: dir.id, path: "/link" }] });
  const seen = await restored.exec("readlink /link; cat /real/keep /real/added /real/sub/replaced");
  assert.equal(seen.stdout, "/real\nbase\nnew\nnew\n");
  for (const s of [restored, source]) await s.delete();
  await dir.delete();
  await image.delete();
});

test("gVisor sandboxes restore through the engine's archive API", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /g/sub && echo via-api > /g/sub/f && ln -s sub /g/link");
  const dir = await (await source.snapshotDirectory("/g")).waitUntilReady();
  const { result: restored, puts } = await archivePuts(t, () =>
    t.strata.sandboxes.create({ image: baseImage, isolation: "gvisor", directorySnapshots: [{ snapshotId: dir.id, path: "/restored" }] }));
  assert.ok(puts.includes("/restored"), `the restore went through the engine's archive API (puts: ${puts.join(", ")})`);
  assert.equal((await restored.exec("cat /restored/link/f")).stdout, "via-api\n");
  for (const s of [restored, source]) await s.delete();
  await dir.delete();
});

test("a missing path is 404 path_not_found and stores nothing", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  const blobsBefore = blobFiles(t).length;
  assert.equal(await errorCode(source.snapshotDirectory("/does/not/exist")), "path_not_found");
  await source.exec("echo x > /a-file");
  assert.equal(await errorCode(source.snapshotDirectory("/a-file")), "bad_request");
  assert.equal(await errorCode(source.snapshot({ path: "/tmp" } as never)), "bad_request");
  assert.equal((await t.strata.snapshots.list({ sandboxId: source.id })).snapshots.length, 0);
  assert.equal(blobFiles(t).length, blobsBefore);
  await source.delete();
});

test("identical content is stored once", async () => {
  const a = await t.strata.sandboxes.create({ image: baseImage });
  await a.exec("mkdir -p /same && head -c 100000 /dev/urandom > /same/f && touch -d '2020-01-01 00:00:00' /same/f /same");
  const first = await (await a.snapshotDirectory("/same")).waitUntilReady();
  const second = await (await a.snapshotDirectory("/same", { labels: { again: "yes" } })).waitUntilReady();
  assert.equal(first.info.contentDigest, second.info.contentDigest);
  assert.notEqual(first.info.digest, second.info.digest);
  const hex = first.info.contentDigest!.slice("sha256:".length);
  assert.equal(blobFiles(t).filter((name) => name === hex).length, 1);
  await first.delete();
  assert.ok(blobFiles(t).includes(hex), "still used by the second snapshot");
  const restored = await t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: second.id }] });
  assert.equal((await restored.exec("wc -c < /same/f")).stdout.trim(), "100000");
  await second.delete();
  assert.ok(!blobFiles(t).includes(hex));
  await restored.delete();
  await a.delete();
});

test("a corrupt blob is detected by verify and never restored", async () => {
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /precious && head -c 200000 /dev/urandom > /precious/data");
  const snapshot = await (await source.snapshotDirectory("/precious")).waitUntilReady();
  const report = await snapshot.verify();
  assert.equal(report.ok, true);
  assert.deepEqual(report.parts.map((p) => [p.part, p.ok]), [["manifest", true], ["blob", true], ["archive", true]]);

  const file = join(t.home, "blobs", "sha256", snapshot.info.contentDigest!.slice("sha256:".length));
  const bytes = readFileSync(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0x01;
  writeFileSync(file, bytes);

  const bad = await snapshot.verify();
  assert.equal(bad.ok, false);
  const blobPart = bad.parts.find((p) => p.part === "blob")!;
  assert.equal(blobPart.ok, false);
  assert.equal(blobPart.code, "blob_corrupt");
  const containersBefore = await t.containers();
  assert.equal(await errorCode(t.strata.sandboxes.create({ image: baseImage, directorySnapshots: [{ snapshotId: snapshot.id }] })), "blob_corrupt");
  assert.equal(await t.containers(), containersBefore);
  assert.equal((await t.strata.sandboxes.list()).length, containersBefore);
  await snapshot.delete();
  await source.delete();
});

test("a capture over the size limit fails with snapshot_too_large and leaves no blob", async () => {
  const small = await startTestServer({ maxSnapshotBytes: 100_000 });
  try {
    const source = await small.strata.sandboxes.create({ image: baseImage });
    await source.exec("mkdir -p /big && head -c 1000000 /dev/urandom > /big/f");
    const snapshot = await source.snapshotDirectory("/big");
    await assert.rejects(snapshot.waitUntilReady(), (error: { code?: string }) => error.code === "snapshot_too_large");
    assert.equal(snapshot.info.status, "failed");
    assert.equal(snapshot.info.error?.code, "snapshot_too_large");
    assert.deepEqual(blobFiles(small), []);
    assert.deepEqual(tempFiles(small), []);
    await source.exec("mkdir -p /tiny && echo ok > /tiny/f");
    await (await source.snapshotDirectory("/tiny")).waitUntilReady();
  } finally {
    await small.close();
  }
});

test("gc removes blobs no snapshot owns", async () => {
  const stray = "sha256:" + "ab".repeat(32);
  writeFileSync(join(t.home, "blobs", "sha256", stray.slice(7)), "orphan");
  writeFileSync(join(t.home, "blobs", "tmp", "leftover.zst"), "partial");
  const source = await t.strata.sandboxes.create({ image: baseImage });
  await source.exec("mkdir -p /owned && echo owned > /owned/f");
  const kept = await (await source.snapshotDirectory("/owned")).waitUntilReady();
  const report = await t.strata.gc();
  assert.deepEqual(report.removedBlobs.map((b) => b.digest), [stray]);
  assert.ok(report.removedTempFiles >= 1);
  assert.ok(blobFiles(t).includes(kept.info.contentDigest!.slice(7)));
  assert.equal((await kept.verify()).ok, true);
  await kept.delete();
  await source.delete();
});

/** A tar header written byte by byte (ustar, checksum included). */
function tarBlock(name: string, type: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, "latin1");
  block.write("0000644\0", 100, "latin1");
  block.write("0000000\0", 108, "latin1");
  block.write("0000000\0", 116, "latin1");
  block.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  block.write("00000000000\0", 136, "latin1");
  block.write(type, 156, "latin1");
  block.write("ustar\x0000", 257, "latin1");
  let sum = 8 * 0x20;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

test("a hostile blob in the store is refused by verify and by restores on both paths, 400 archive_unsafe_path, nothing made", async () => {
  // a block device hidden behind a pax size record: the ustar size hides two
  // blocks from a reader that skips pax records; tar honours the pax size (0)
  const record = "10 size=0\n";
  const hostile = Buffer.concat([
    tarBlock("./", "5", 0),
    tarBlock("././@PaxHeader", "x", record.length), Buffer.from(record.padEnd(512, "\0")),
    tarBlock("./innocent", "0", 1024),
    tarBlock("./sda", "4", 0), Buffer.alloc(512),
    Buffer.alloc(1024),
  ]);
  const ctx = t.server.context;
  const source = await t.strata.sandboxes.create({ image: baseImage });
  try {
    await source.exec("mkdir -p /plain && echo x > /plain/f");
    const snapshot = await (await source.snapshotDirectory("/plain")).waitUntilReady();
    // as a blob from before this check, or from an archive made elsewhere, would sit in the store
    const { Readable } = await import("node:stream");
    const blob = await ctx.blobs.writeTar(Readable.from([hostile]));
    ctx.blobs.unpin(blob.digest);
    ctx.index.putSnapshot({ ...ctx.index.findSnapshot(snapshot.id)!, contentDigest: blob.digest });
    const report = await snapshot.verify();
    assert.equal(report.ok, false);
    assert.deepEqual(report.parts.map((p) => [p.part, p.ok, p.code ?? ""]), [["manifest", true, ""], ["blob", true, ""], ["archive", false, "archive_unsafe_path"]]);
    assert.match(report.parts[2]!.message ?? "", /'\.\/sda' is a block device/);
    const before = await t.containers();
    for (const isolation of ["runc", "gvisor"] as const) {
      const code = await errorCode(t.strata.sandboxes.create({ image: baseImage, isolation, directorySnapshots: [{ snapshotId: snapshot.id, path: "/restored" }] }));
      assert.equal(code, "archive_unsafe_path", isolation);
      assert.equal(await t.containers(), before, isolation);
    }
    await snapshot.delete();
  } finally {
    await source.delete();
  }
});
