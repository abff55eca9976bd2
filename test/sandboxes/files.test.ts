// A user moves files in and out of sandboxes: the files API changes only
// what it is asked to, as the sandbox sees its paths, on runc and gVisor.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import assert from "node:assert/strict";
import type { Sandbox, Snapshot } from "@strata/sdk";
import { errorCode, startTestServer, type TestServer, test } from "../harness.js";

let t: TestServer;
let image: Snapshot;
const snapshots: Snapshot[] = [];
const contextDir = mkdtempSync(join(tmpdir(), "strata-files-ctx-"));

// /tmp is drwxrwxrwt root; the image's USER owns a private home; /mylib is a
// relative link into /usr; /loop, /a and /b are loops; /shm leads under /dev.
const dockerfile = `FROM strata-test/busybox:latest
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \\
 && mkdir -p /home/app /usr/mylib /srv/data && chown 1000:1000 /home/app && chmod 0700 /home/app \\
 && echo foo > /usr/mylib/libfoo.so && ln -s usr/mylib /mylib \\
 && ln -s /loop /loop && ln -s b /a && ln -s a /b && ln -s /dev/shm /shm \\
 && echo original > /srv/data/conf && chown 1000:0 /srv/data/conf && chmod 0640 /srv/data/conf \\
 && chmod 0750 /srv/data && chown 1000:1000 /srv/data
USER app
WORKDIR /home/app
`;

before(async () => {
  t = await startTestServer();
  writeFileSync(join(contextDir, "Dockerfile"), dockerfile);
  image = await t.strata.snapshots.build({ context: contextDir });
  snapshots.push(image);
});
after(async () => {
  try {
    for (const sandbox of await t.strata.sandboxes.list()) await sandbox.delete().catch(() => undefined);
    for (const snapshot of snapshots.reverse()) await snapshot.delete({ force: true }).catch(() => undefined);
    await t.strata.gc().catch(() => undefined);
    const left = await t.server.context.engine.listImages({ "dev.strata.server": t.server.context.serverId });
    assert.deepEqual(left.map((image) => image.tags), [], "the test leaves no image in the engine");
  } finally {
    await t.close();
    rmSync(contextDir, { recursive: true, force: true });
  }
});

const out = async (sandbox: Sandbox, script: string) => (await sandbox.exec(["sh", "-c", script])).stdout;

/** A raw request, for inputs the SDK would never send. */
async function raw(method: "GET" | "PUT", sandboxId: string, query: string, body?: string): Promise<{ status: number; code?: string; message?: string }> {
  const response = await fetch(`${t.server.url}/v1/sandboxes/${sandboxId}/files?${query}`, {
    method, body, headers: body !== undefined ? { "content-type": "application/octet-stream" } : {},
  });
  const text = await response.text();
  if (response.ok) return { status: response.status };
  const { error } = JSON.parse(text) as { error: { code: string; message: string } };
  return { status: response.status, code: error.code, ...(response.status >= 500 ? { message: error.message } : {}) };
}

for (const isolation of ["runc", "gvisor"] as const) {
  test(`${isolation}: an upload makes only missing directories; existing ones keep owner and mode`, async () => {
    const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id, isolation });
    try {
      if (isolation === "gvisor" && (await errorCode(sandbox.files.write("/tmp/probe", "x"))) === "files_not_visible") {
        // the engine's runsc keeps its own cache of the sandbox's files: uploads are refused, and nothing was written
        assert.equal(await out(sandbox, "ls -A /tmp"), ".strata-keep-tmp\n");
        return;
      }
      const written = await sandbox.files.write("/tmp/newdir/a.txt", "hello");
      assert.equal(written.path, "/tmp/newdir/a.txt");
      assert.equal(await out(sandbox, "stat -c %a:%U /tmp /tmp/newdir /tmp/newdir/a.txt"), "1777:root\n755:app\n644:app\n");
      // (not /: the overlay changes its time when it copies /home up, as for any write by the sandbox)
      const grandparents = await out(sandbox, "stat -c %Y:%a:%u:%g /home");
      await sandbox.files.write("/home/app/sub/deeper/b.txt", "private");
      assert.equal(await out(sandbox, "stat -c %Y:%a:%u:%g /home"), grandparents, "directories above the first one made keep their times too");
      assert.equal(await out(sandbox, "stat -c %a:%U /home/app /home/app/sub /home/app/sub/deeper/b.txt"), "700:app\n755:app\n644:app\n");
      assert.equal(await out(sandbox, "cat /home/app/sub/deeper/b.txt"), "private");

      // an overwrite keeps the file's owner and mode; the request may name others
      await sandbox.files.write("/srv/data/conf", "replaced");
      assert.equal(await out(sandbox, "stat -c %a:%U:%G /srv/data /srv/data/conf; cat /srv/data/conf"), "750:app:app\n640:app:root\nreplaced");
      await sandbox.files.write("/srv/data/secret", "s", { owner: "0:0", mode: "0600" });
      assert.equal(await out(sandbox, "stat -c %a:%u:%g /srv/data/secret"), "600:0:0\n");
      await sandbox.files.write("/srv/data/conf", "again", { mode: "0604" });
      assert.equal(await out(sandbox, "stat -c %a:%U:%G /srv/data/conf"), "604:app:root\n");
      assert.equal(await errorCode(sandbox.files.write("/srv/data/x", "x", { owner: "nobody-here" })), "bad_request");

      // a tar upload: the missing directories are the sandbox user's, existing ones untouched
      const tar = await sandbox.files.stream("/home/app/sub");
      const bytes = new Uint8Array(await new Response(tar.body).arrayBuffer());
      // the directory-archive check reads the tar before the engine does
      assert.equal(await errorCode(sandbox.files.writeTar("/tmp/garbage", new Uint8Array(1000).fill(7))), "archive_unsafe_path");
      assert.equal(await errorCode(sandbox.files.writeTar("/tmp/garbage", bytes.slice(0, 700))), "archive_truncated");
      await sandbox.files.writeTar("/tmp/unpacked/here", bytes);
      assert.equal(await out(sandbox, "stat -c %a:%U /tmp /tmp/unpacked; cat /tmp/unpacked/here/sub/deeper/b.txt"), "1777:root\n755:app\nprivate");
    } finally {
      await sandbox.delete();
    }
  });
}

test("links in the path are followed inside the sandbox and stay links", async () => {
  const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id });
  try {
    const written = await sandbox.files.write("/mylib/plugins/p.so", "plugin");
    assert.equal(written.path, "/usr/mylib/plugins/p.so");
    assert.equal(await out(sandbox, "readlink /mylib; cat /usr/mylib/plugins/p.so; echo; cat /usr/mylib/libfoo.so"), "usr/mylib\nplugin\nfoo\n");
    assert.equal(await sandbox.files.readText("/mylib/plugins/p.so"), "plugin");
    assert.equal(await sandbox.files.readText("/mylib/libfoo.so"), "foo\n");
    // a link as the last component: the file it points to is overwritten, the link stays
    await sandbox.exec(["sh", "-c", "ln -s /usr/mylib/libfoo.so /tmp/foo-link"]);
    await sandbox.files.write("/tmp/foo-link", "bar");
    assert.equal(await out(sandbox, "readlink /tmp/foo-link; cat /usr/mylib/libfoo.so"), "/usr/mylib/libfoo.so\nbar");
    // a link to a directory is captured as that directory
    const dir = await (await sandbox.snapshotDirectory("/mylib")).waitUntilReady();
    snapshots.push(dir);
    assert.equal(dir.info.status, "ready");
  } finally {
    await sandbox.delete();
  }
});

test("a loop of links anywhere in a path is path_symlink_loop, for reads, writes and captures", async () => {
  const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id });
  try {
    assert.equal(await errorCode(sandbox.files.write("/loop/x", "x")), "path_symlink_loop");
    assert.equal(await errorCode(sandbox.files.write("/a", "x")), "path_symlink_loop");
    assert.equal(await errorCode(sandbox.files.read("/loop")), "path_symlink_loop");
    assert.equal(await errorCode(sandbox.files.read("/b/c/d")), "path_symlink_loop");
    assert.equal(await errorCode(sandbox.snapshotDirectory("/loop")), "path_symlink_loop");
    assert.equal(await errorCode(sandbox.snapshotDirectory("/a/inside")), "path_symlink_loop");
    assert.equal(await out(sandbox, "readlink /loop; readlink /a"), "/loop\nb\n");
    const dir = await (await sandbox.snapshotDirectory("/usr/mylib")).waitUntilReady();
    snapshots.push(dir);
    const containers = await t.containers();
    for (const isolation of ["runc", "gvisor"] as const) {
      const created = t.strata.sandboxes.create({ snapshotId: image.id, isolation, directorySnapshots: [{ snapshotId: dir.id, path: "/loop/restored" }] });
      assert.equal(await errorCode(created), "path_symlink_loop", isolation);
    }
    assert.equal(await t.containers(), containers, "no container left by a refused restore");
  } finally {
    await sandbox.delete();
  }
});

test("a path that is not valid after decoding is a 400 path_invalid, and nothing is written", async () => {
  const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id });
  try {
    const before = await out(sandbox, "ls -A /tmp /");
    for (const query of ["path=relative.txt", "path=%2Ftmp%2Fa%00b", "path=/../tmp/x", "path=/tmp/../../x", "path=/tmp/%ff%fe", "path=/tmp/%zz", "path=/tmp/%E2%82", "path="]) {
      assert.deepEqual(await raw("PUT", sandbox.id, query, "x"), { status: 400, code: "path_invalid" }, `PUT ${query}`);
      assert.deepEqual(await raw("GET", sandbox.id, query), { status: 400, code: "path_invalid" }, `GET ${query}`);
    }
    assert.equal(await errorCode(sandbox.files.write(`/tmp/${"n".repeat(256)}`, "x")), "path_invalid");
    assert.equal(await errorCode(sandbox.snapshotDirectory("/tmp/\ud800")), "path_invalid");
    assert.equal(await errorCode(sandbox.snapshotDirectory("/tmp/../..")), "path_invalid");
    // a NUL fails the request's schema first (400 bad_request naming body/cwd, as for every C string)
    assert.equal(await errorCode(sandbox.exec(["pwd"], { cwd: "/tmp/a\u0000b" })), "bad_request");
    assert.equal(await errorCode(sandbox.exec(["pwd"], { cwd: "/tmp/\ud800" })), "path_invalid");
    assert.equal(await out(sandbox, "ls -A /tmp /"), before);
    // a valid name of any other byte is that name
    const name = "/tmp/sp ace+plus%25 é";
    await sandbox.files.write(name, "named");
    assert.equal(await out(sandbox, `cat '${name}'`), "named");
    assert.equal((await sandbox.files.write("/tmp/./dots/../dot.txt", "d")).path, "/tmp/dot.txt");
    const containers = await t.containers();
    assert.equal(await errorCode(t.strata.sandboxes.create({ snapshotId: image.id, directorySnapshots: [{ snapshotId: snapshots.at(-1)!.id, path: "/srv/../../x" }] })), "path_invalid");
    assert.equal(await t.containers(), containers);
  } finally {
    await sandbox.delete();
  }
});

test("paths the runtime mounts over are refused on upload, download, capture and restore", async () => {
  const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id });
  try {
    const dir = await (await sandbox.snapshotDirectory("/usr/mylib")).waitUntilReady();
    snapshots.push(dir);
    assert.equal(await errorCode(sandbox.files.write("/dev/shm/x", "x")), "path_runtime_managed");
    assert.equal(await errorCode(sandbox.files.write("/shm/x", "x")), "path_runtime_managed");
    assert.equal(await errorCode(sandbox.files.read("/proc/1/status")), "path_runtime_managed");
    assert.equal(await errorCode(sandbox.files.read("/sys")), "path_runtime_managed");
    // files the engine binds in: readable, never replaced (by a file or by a tar member)
    assert.match(await sandbox.files.readText("/etc/hostname"), /^[0-9a-f]{12}\n$/);
    assert.equal(await errorCode(sandbox.files.write("/etc/hosts", "1.2.3.4 x")), "path_runtime_managed");
    const etc = await sandbox.files.stream("/etc");
    const etcBytes = new Uint8Array(await new Response(etc.body).arrayBuffer());
    assert.equal(await errorCode(sandbox.files.writeTar("/", etcBytes)), "path_runtime_managed");
    // a tar whose members would land under /proc: refused before the engine extracts anything
    await sandbox.exec(["sh", "-c", "mkdir -p /tmp/proc && echo hidden > /tmp/proc/x"]);
    const proc = new Uint8Array(await new Response((await sandbox.files.stream("/tmp/proc")).body).arrayBuffer());
    assert.equal(await errorCode(sandbox.files.writeTar("/", proc)), "path_runtime_managed");
    assert.equal(await errorCode(sandbox.files.writeTar("/dev", proc)), "path_runtime_managed");
    assert.equal(await errorCode(sandbox.snapshotDirectory("/dev/shm")), "path_runtime_managed");
    const containers = await t.containers();
    for (const isolation of ["runc", "gvisor"] as const) {
      for (const path of ["/dev/shm/restored", "/proc/x", "/sys/fs/x", "/dev", "/shm/restored"]) {
        const created = t.strata.sandboxes.create({ snapshotId: image.id, isolation, directorySnapshots: [{ snapshotId: dir.id, path }] });
        assert.equal(await errorCode(created), "path_runtime_managed", `${isolation} ${path}`);
      }
    }
    assert.equal(await t.containers(), containers, "no container left by a refused restore");
  } finally {
    await sandbox.delete();
  }
});

for (const isolation of ["runc", "gvisor"] as const) {
  test(`${isolation}: a directory restore keeps the existing ancestors' owner and mode`, async () => {
    const source = await t.strata.sandboxes.create({ snapshotId: image.id });
    try {
      await source.exec(["sh", "-c", "mkdir -p /home/app/data && echo kept > /home/app/data/f"]);
      const dir = await (await source.snapshotDirectory("/home/app/data")).waitUntilReady();
      snapshots.push(dir);
      const restored = await t.strata.sandboxes.create({
        snapshotId: image.id, isolation,
        directorySnapshots: [{ snapshotId: dir.id, path: "/home/app/restored/here" }, { snapshotId: dir.id, path: "/tmp/r" }, { snapshotId: dir.id, path: "/mylib/r" }],
      });
      try {
        assert.equal(await out(restored, "stat -c %a:%U /home/app /tmp; cat /home/app/restored/here/f /tmp/r/f /usr/mylib/r/f; readlink /mylib"), "700:app\n1777:root\nkept\nkept\nkept\nusr/mylib\n");
      } finally {
        await restored.delete();
      }
    } finally {
      await source.delete();
    }
  });
}

test("gvisor: /tmp is the sandbox's own, for the files API and every snapshot kind", async () => {
  const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id, isolation: "gvisor" });
  try {
    assert.equal(await out(sandbox, "grep ' /tmp ' /proc/mounts || echo none"), "none\n");
    await sandbox.exec(["sh", "-c", "echo from-sandbox > /tmp/in.txt"]);
    assert.equal(await sandbox.files.readText("/tmp/in.txt"), "from-sandbox\n");
    const uploaded = await errorCode(sandbox.files.write("/tmp/up.txt", "from-api"));
    if (uploaded === "no error") assert.equal(await out(sandbox, "cat /tmp/up.txt"), "from-api");
    else assert.equal(uploaded, "files_not_visible");

    const dir = await (await sandbox.snapshotDirectory("/tmp")).waitUntilReady();
    snapshots.push(dir);
    const container = await (await sandbox.snapshot()).waitUntilReady();
    snapshots.push(container);
    const fromContainer = await t.strata.sandboxes.create({ snapshotId: container.id });
    const fromDirectory = await t.strata.sandboxes.create({ snapshotId: image.id, directorySnapshots: [{ snapshotId: dir.id, path: "/restored" }] });
    try {
      assert.equal(await out(fromContainer, "cat /tmp/in.txt"), "from-sandbox\n");
      assert.equal(await out(fromDirectory, "cat /restored/in.txt"), "from-sandbox\n");
    } finally {
      await fromContainer.delete();
      await fromDirectory.delete();
    }

    // emptied and restarted: /tmp stays on the root filesystem
    await sandbox.exec(["sh", "-c", "rm -rf /tmp/* /tmp/.strata-keep-tmp; echo again > /tmp/again.txt"]);
    await sandbox.stop({ timeoutSeconds: 1 });
    await sandbox.start();
    assert.equal(await out(sandbox, "cat /tmp/again.txt; grep ' /tmp ' /proc/mounts || echo none"), "again\nnone\n");
    assert.equal(await sandbox.files.readText("/tmp/again.txt"), "again\n");
  } finally {
    await sandbox.delete();
  }
});

test("reads and writes while the sandbox swaps a link in the path answer 200 or a 4xx, never a 500", async () => {
  const sandbox = await t.strata.sandboxes.create({ snapshotId: image.id });
  try {
    await sandbox.exec(["sh", "-c", "mkdir -p /tmp/d1 /tmp/d2 && echo one > /tmp/d1/f && echo two > /tmp/d2/f"]);
    await sandbox.exec(["sh", "-c", "(while true; do ln -sfn d1 /tmp/s; ln -sfn d2 /tmp/s; rm -f /tmp/s; mkdir /tmp/s; rm -rf /tmp/s; done) >/dev/null 2>&1 &"]);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const read = await raw("GET", sandbox.id, "path=/tmp/s/f");
      const write = await raw("PUT", sandbox.id, `path=/tmp/s/g${i}`, "x");
      for (const reply of [read, write]) {
        assert.ok(reply.status < 500, `reply ${reply.status} ${reply.code}: ${reply.message}`);
        seen.add(`${reply.status}`);
      }
    }
    assert.ok(seen.has("200"));
  } finally {
    await sandbox.delete();
  }
});
