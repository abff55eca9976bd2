// What a snapshot holds is what the sandbox saw: a listing taken inside the
// sandbox (names as bytes, types, modes, owners, sizes, content sums, link
// targets, device numbers, hard link groups) before the capture equals the
// one taken after the restore, for directory snapshots on both capture paths
// (the host's tar for runc, the engine's archive for gVisor) restored on both
// paths, and for container snapshots. What cannot round trip fails the
// capture with its code.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { baseImage, errorCode, startTestServer, type TestServer, test } from "../harness.js";
import type { Sandbox } from "@strata/sdk";

let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(async () => {
  await t.close();
});

type Isolation = "runc" | "gvisor";

/**
 * One line per entry under the directory: the name's bytes in hex, the raw
 * mode (type bits included), owner, group, size, device numbers, link count,
 * inode, a content sum for regular files and a link's target in hex.
 */
const listScript = `
cd "$1" || exit 1
find . -exec sh -c '
for f; do
  printf %s "$f" | od -An -tx1 | tr -d " \\n"
  stat -c " %f %u %g %s %t,%T %h %i" "$f" | tr -d "\\n"
  if [ -L "$f" ]; then printf " L"; readlink "$f" | od -An -tx1 | tr -d " \\n"
  elif [ -f "$f" ]; then printf " C"; md5sum < "$f" | cut -c1-16 | tr -d "\\n"; fi
  echo
done' sh {} +
`;

/**
 * The tree as comparable records: directory sizes (a file system detail) and
 * inode numbers left out; hard links as the group of names sharing an inode.
 */
async function listing(sandbox: Sandbox, dir: string): Promise<string[]> {
  const result = await sandbox.exec(["sh", "-c", listScript, "sh", dir]);
  assert.equal(result.exitCode, 0, result.stderr);
  const rows = result.stdout.split("\n").filter(Boolean).map((line) => {
    const [name, mode, uid, gid, size, dev, links, inode, extra] = line.split(" ");
    return { name: name!, mode: mode!, uid: uid!, gid: gid!, size: size!, dev: dev!, links: links!, inode: inode!, extra: extra ?? "" };
  });
  const byInode = new Map<string, string[]>();
  for (const row of rows) byInode.set(row.inode, [...(byInode.get(row.inode) ?? []), row.name]);
  return rows
    .map((row) => {
      const isDirectory = (parseInt(row.mode, 16) & 0o170000) === 0o040000;
      const group = !isDirectory && Number(row.links) > 1 ? byInode.get(row.inode)!.sort().join("+") : "";
      // the link count is told by the group: gVisor reports a stale count on one of a file's names
      return [row.name, row.mode, row.uid, row.gid, isDirectory ? "-" : row.size, row.dev, group, row.extra].join(" ");
    })
    .sort();
}

/** Every byte but NUL and '/', as octal escapes for printf. */
const everyByte = Array.from({ length: 255 }, (_, i) => i + 1).filter((b) => b !== 0x2f).map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("");

/** A tree of what directories hold in the wild, made inside the sandbox at $1. */
const treeScript = `
set -e
mkdir -p "$1" && cd "$1"
mkdir sub empty && chmod 700 empty && chown 7:8 empty
printf hi > sub/f && chmod 640 sub/f && chown 1000:1001 sub/f
ln sub/f hard1 && ln sub/f sub/hard2
ln -s sub/f rel-link && ln -s /etc/passwd abs-link && ln -s missing dangling
printf x > setuid && chmod 4755 setuid
head -c 70000 /dev/urandom > random.bin && : > empty-file
long=$(head -c 255 /dev/zero | tr '\\0' L) && printf long > "$long"
seg=$(head -c 60 /dev/zero | tr '\\0' d) && d=deep && for i in 1 2 3 4 5 6; do d="$d/$seg$i"; done
mkdir -p "$d" && printf deep > "$d/file"
every=$(printf '${everyByte}') && printf every > "$every" && mkdir "x$every" && printf inner > "x$every/$every"
nl=$(printf 'ends-in-newline\\n.') && nl=\${nl%.} && printf nl > "$nl"
printf 'back\\\\slash' > 'back\\slash' && printf u > "$(printf 'bad-utf8-\\377\\376-\\300')"
`;

async function makeTree(sandbox: Sandbox, dir: string): Promise<void> {
  const made = await sandbox.exec(["sh", "-c", treeScript, "sh", dir]);
  assert.equal(made.exitCode, 0, made.stderr);
}

async function sandboxOn(isolation: Isolation, more: Record<string, unknown> = {}): Promise<Sandbox> {
  return t.strata.sandboxes.create({ image: baseImage, isolation, ...more });
}

for (const from of ["runc", "gvisor"] as const) {
  test(`a directory captured from a ${from} sandbox restores as it was seen, on runc and gVisor`, async () => {
    const made: { delete(): Promise<unknown> }[] = [];
    try {
      const source = await sandboxOn(from);
      made.push(source);
      await makeTree(source, "/rt");
      const before = await listing(source, "/rt");
      assert.ok(before.length >= 18, before.join("\n"));
      const snapshot = await (await source.snapshotDirectory("/rt")).waitUntilReady();
      made.push(snapshot);
      assert.equal((await snapshot.verify()).ok, true);
      for (const to of ["runc", "gvisor"] as const) {
        const restored = await sandboxOn(to, { directorySnapshots: [{ snapshotId: snapshot.id, path: "/back" }] });
        made.push(restored);
        assert.deepEqual(await listing(restored, "/back"), before, `${from} -> ${to}`);
      }
    } finally {
      for (const thing of made.reverse()) await thing.delete().catch(() => undefined);
    }
  });

  test(`a container snapshot of a ${from} sandbox restores the tree as it was seen${from === "runc" ? ", special files included" : "; a fifo fails it"}`, async () => {
    const made: { delete(): Promise<unknown> }[] = [];
    try {
      const source = await sandboxOn(from);
      made.push(source);
      await makeTree(source, "/rt");
      if (from === "runc") await source.exec("mkfifo /rt/fifo && mknod /rt/null c 1 3 && mknod /rt/loop b 7 0");
      else {
        // gVisor keeps a fifo inside the sandbox, where the commit cannot see it
        await source.exec("mkfifo /fifo-in-gvisor");
        const refused = await source.snapshot();
        made.push(refused);
        assert.equal(await errorCode(refused.waitUntilReady()), "special_file_unsupported");
        await source.exec("rm /fifo-in-gvisor");
      }
      const before = await listing(source, "/rt");
      const snapshot = await (await source.snapshot()).waitUntilReady();
      made.push(snapshot);
      const restored = await t.strata.sandboxes.create({ snapshotId: snapshot.id, isolation: from });
      made.push(restored);
      assert.deepEqual(await listing(restored, "/rt"), before);
    } finally {
      for (const thing of made.reverse()) await thing.delete().catch(() => undefined);
    }
  });
}

test("special files fail a directory capture with special_file_unsupported; excluded ones do not", async () => {
  const made: { delete(): Promise<unknown> }[] = [];
  try {
    const runc = await sandboxOn("runc");
    made.push(runc);
    await runc.exec("mkdir -p /b /c /p /ok/cache && mknod /b/sda b 7 0 && mknod /c/null c 1 3 && mkfifo /p/fifo && mkfifo /ok/cache/fifo && echo kept > /ok/f");
    for (const dir of ["/b", "/c", "/p"]) {
      const snapshot = await runc.snapshotDirectory(dir);
      made.push(snapshot);
      assert.equal(await errorCode(snapshot.waitUntilReady()), "special_file_unsupported", dir);
    }
    const excluded = await (await runc.snapshotDirectory("/ok", { exclude: ["cache"] })).waitUntilReady();
    made.push(excluded);
    // a stopped sandbox is read through the engine's archive: the same check
    await runc.stop({ timeoutSeconds: 1 });
    const stopped = await runc.snapshotDirectory("/c");
    made.push(stopped);
    assert.equal(await errorCode(stopped.waitUntilReady()), "special_file_unsupported");

    // a gVisor sandbox keeps its fifos to itself: the engine's archive would leave them out
    const gvisor = await sandboxOn("gvisor");
    made.push(gvisor);
    await gvisor.exec("mkdir -p /p && mkfifo /p/fifo && echo x > /p/f");
    const fromGvisor = await gvisor.snapshotDirectory("/p");
    made.push(fromGvisor);
    assert.equal(await errorCode(fromGvisor.waitUntilReady()), "special_file_unsupported");
  } finally {
    for (const thing of made.reverse()) await thing.delete().catch(() => undefined);
  }
});

test("paths too long to restore fail the capture with path_too_long on both capture paths", async () => {
  const made: { delete(): Promise<unknown> }[] = [];
  try {
    for (const isolation of ["runc", "gvisor"] as const) {
      const source = await sandboxOn(isolation);
      made.push(source);
      // 16 levels of 200 bytes: 3215 bytes below /long, past the 3072 that restore on every path
      const made2 = await source.exec(["sh", "-c", 'seg=$(head -c 200 /dev/zero | tr "\\0" p) && d=/long && for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do d="$d/$seg"; done && mkdir -p "$d" && echo deep > "$d/f"']);
      assert.equal(made2.exitCode, 0, made2.stderr);
      const snapshot = await source.snapshotDirectory("/long");
      made.push(snapshot);
      assert.equal(await errorCode(snapshot.waitUntilReady()), "path_too_long", isolation);
    }
  } finally {
    for (const thing of made.reverse()) await thing.delete().catch(() => undefined);
  }
});

test("a link that climbs out of the directory restores on runc; on gVisor the restore refuses it up front, and verify says so", async () => {
  const made: { delete(): Promise<unknown> }[] = [];
  try {
    const source = await sandboxOn("runc");
    made.push(source);
    await source.exec("mkdir -p /c/sub && ln -s ../../etc /c/sub/up && echo x > /c/f");
    const snapshot = await (await source.snapshotDirectory("/c")).waitUntilReady();
    made.push(snapshot);
    const report = await snapshot.verify();
    assert.equal(report.ok, true);
    const archive = report.parts.find((p) => p.part === "archive")!;
    assert.match(archive.message ?? "", /^not into gVisor sandboxes: the symbolic link 'sub\/up' -> '\.\.\/\.\.\/etc' climbs out/);
    const runc = await sandboxOn("runc", { directorySnapshots: [{ snapshotId: snapshot.id, path: "/r" }] });
    made.push(runc);
    assert.equal((await runc.exec("readlink /r/sub/up")).stdout, "../../etc\n");
    const before = await t.containers();
    assert.equal(await errorCode(sandboxOn("gvisor", { directorySnapshots: [{ snapshotId: snapshot.id, path: "/r" }] })), "archive_unsafe_path");
    assert.equal(await t.containers(), before);
  } finally {
    for (const thing of made.reverse()) await thing.delete().catch(() => undefined);
  }
});
