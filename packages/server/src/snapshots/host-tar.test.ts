// A hostile sandbox's links never lead the host's reader out of its root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StrataError } from "@strata/contract";
import tar from "tar-stream";
import { createServer } from "node:net";
import { hostTar, hostUntar, openInRoot } from "./host-tar.js";

function fixture(): { root: string; cleanup: () => void } {
  const outer = mkdtempSync(join(tmpdir(), "strata-host-tar-"));
  const root = join(outer, "root");
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(join(root, "data/deep"), { recursive: true });
  writeFileSync(join(root, "etc/marker"), "inside");
  writeFileSync(join(outer, "secret"), "outside");
  symlinkSync("/", join(root, "abs"));
  symlinkSync("../../../../../..", join(root, "data/deep/up"));
  symlinkSync("/etc", join(root, "data/etc-link"));
  symlinkSync("loop", join(root, "loop"));
  symlinkSync("/data/etc-link/marker", join(root, "data/file-link"));
  return { root, cleanup: () => rmSync(outer, { recursive: true, force: true }) };
}

async function resolved(root: string, path: string): Promise<string> {
  const handle = await openInRoot(root, path);
  try {
    return readlinkSync(`/proc/self/fd/${handle.fd}`);
  } finally {
    await handle.close();
  }
}

test("links resolve inside the root: absolute from the root, .. stops at it", async () => {
  const { root, cleanup } = fixture();
  try {
    assert.equal(await resolved(root, "/"), root);
    assert.equal(await resolved(root, "/abs/abs/etc"), join(root, "etc"));
    assert.equal(await resolved(root, "/data/deep/up/etc"), join(root, "etc"));
    assert.equal(await resolved(root, "/../../etc/../data"), join(root, "data"));
    assert.equal(await resolved(root, "/data/etc-link"), join(root, "etc"));
    const code = async (path: string) => openInRoot(root, path).then(() => "opened", (error: StrataError) => error.code);
    assert.equal(await code("/missing"), "path_not_found");
    assert.equal(await code("/loop"), "path_symlink_loop");
    assert.equal(await code("/data/file-link"), "bad_request");
    assert.equal(await code("/etc/marker"), "bad_request");
  } finally {
    cleanup();
  }
});

test("the archive holds links as links, never what they point to", async () => {
  const { root, cleanup } = fixture();
  try {
    const entries: { name: string; type: string; linkname?: string | null; body: string }[] = [];
    const extract = tar.extract();
    extract.on("entry", (header, stream, next) => {
      let body = "";
      stream.on("data", (chunk) => (body += String(chunk)));
      stream.on("end", () => {
        entries.push({ name: header.name, type: header.type ?? "", linkname: header.linkname, body });
        next();
      });
    });
    const done = new Promise<void>((resolve, reject) => extract.on("finish", () => resolve()).on("error", reject));
    (await hostTar(root, "/abs/data")).pipe(extract);
    await done;
    assert.deepEqual(entries.map((e) => e.name), ["./", "./deep/", "./deep/up", "./etc-link", "./file-link"]);
    assert.deepEqual(entries.filter((e) => e.type === "symlink").map((e) => e.linkname), ["../../../../../..", "/etc", "/data/etc-link/marker"]);
    assert.ok(entries.every((e) => !e.body.includes("outside")));
  } finally {
    cleanup();
  }
});

async function crafted(entries: { name: string; type?: "directory" | "symlink" | "link" | "file"; linkname?: string; body?: string }[]): Promise<Readable> {
  const pack = tar.pack();
  for (const entry of entries) pack.entry({ name: entry.name, type: entry.type ?? "file", linkname: entry.linkname, mode: 0o755 }, entry.body ?? "");
  pack.finalize();
  return pack as unknown as Readable;
}

test("extraction never leaves its directory, whatever the archive or the links already there", async () => {
  const { root, cleanup } = fixture();
  const outside = join(root, "..", "outside");
  mkdirSync(outside);
  symlinkSync(outside, join(root, "data/host-link"));
  try {
    const refused = [
      [{ name: "./", type: "directory" }, { name: "./host-link/x", body: "no" }],
      [{ name: "./", type: "directory" }, { name: "./l", type: "symlink", linkname: "/" }, { name: "./l/x", body: "no" }],
      [{ name: "./", type: "directory" }, { name: "./h", type: "link", linkname: "../../secret" }],
      [{ name: "./", type: "directory" }, { name: "../x", body: "no" }],
      [{ name: "/abs", body: "no" }],
    ] as const;
    for (const entries of refused) {
      const code = await hostUntar(root, "/data", await crafted([...entries])).then(() => "extracted", (error: StrataError) => error.code);
      assert.equal(code, "archive_unsafe_path", JSON.stringify(entries));
    }
    // a directory member where a link stands replaces the link, as the engine's extraction does
    await hostUntar(root, "/data", await crafted([{ name: "./", type: "directory" }, { name: "./host-link/", type: "directory" }, { name: "./host-link/x", body: "yes" }]));
    assert.equal(readFileSync(join(root, "data/host-link/x"), "utf8"), "yes");
    assert.deepEqual(readdirSync(outside), []);
    // a missing directory is made; links in the path resolve inside the root
    await hostUntar(root, "/abs/new/dir", await crafted([{ name: "./", type: "directory" }, { name: "./f", body: "made" }]));
    assert.equal(readFileSync(join(root, "new/dir/f"), "utf8"), "made");
  } finally {
    cleanup();
  }
});

test("a socket, which tar leaves out with only a warning, fails the read with special_file_unsupported", async () => {
  const { root, cleanup } = fixture();
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => server.listen(join(root, "data/sock"), resolve).on("error", reject));
    const stream = await hostTar(root, "/data");
    const code = await (async () => {
      for await (const _chunk of stream) {
        // drained to the end, where tar's verdict comes
      }
      return "read";
    })().catch((error: StrataError) => error.code);
    assert.equal(code, "special_file_unsupported");
  } finally {
    server.close();
    cleanup();
  }
});
