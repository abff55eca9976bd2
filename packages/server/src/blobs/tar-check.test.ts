// The directory archive check against archives written here byte by byte:
// what it accepts, GNU tar reads exactly as it did; what it refuses, it
// refuses with the right code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StrataError } from "@strata/contract";
import { DirectoryArchiveCheck, maxNameBytes, type CheckOptions, type CheckedMember } from "./tar-check.js";

interface HeaderFields {
  name: string | Buffer;
  type?: string;
  size?: number;
  mode?: number;
  uid?: number;
  linkname?: string;
  magic?: "posix" | "gnu" | "v7";
  prefix?: string;
  /** The size field's 12 bytes as written, e.g. base-256. */
  rawSize?: Buffer;
}

function octalField(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, "latin1");
}

/** One 512-byte header, checksum included. */
function header(fields: HeaderFields): Buffer {
  const block = Buffer.alloc(512);
  (typeof fields.name === "string" ? Buffer.from(fields.name, "latin1") : fields.name).copy(block, 0, 0, 100);
  octalField(block, 100, 8, fields.mode ?? 0o644);
  octalField(block, 108, 8, fields.uid ?? 0);
  octalField(block, 116, 8, 0);
  if (fields.rawSize) fields.rawSize.copy(block, 124);
  else octalField(block, 124, 12, fields.size ?? 0);
  octalField(block, 136, 12, 1_700_000_000);
  block.write(fields.type ?? "0", 156, "latin1");
  block.write(fields.linkname ?? "", 157, 100, "latin1");
  const magic = fields.magic ?? "posix";
  if (magic === "posix") block.write("ustar\x0000", 257, "latin1");
  if (magic === "gnu") block.write("ustar  \0", 257, "latin1");
  if (fields.prefix) block.write(fields.prefix, 345, 155, "latin1");
  let sum = 8 * 0x20;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += block[i]!;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

/** A member with content. */
function file(name: string | Buffer, content: string | Buffer, more: Partial<HeaderFields> = {}): Buffer {
  const data = Buffer.from(content);
  return Buffer.concat([header({ name, size: data.length, ...more }), pad(data)]);
}

/** A pax extended header holding these records (values as bytes). */
function pax(records: [string, string | Buffer][], type = "x"): Buffer {
  const body = Buffer.concat(records.map(([key, value]) => {
    const rest = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value as string, typeof value === "string" ? "latin1" : undefined), Buffer.from("\n")]);
    let length = rest.length + 1;
    while (String(length).length + rest.length !== length) length = String(length).length + rest.length;
    return Buffer.concat([Buffer.from(String(length)), rest]);
  }));
  return Buffer.concat([header({ name: "././@PaxHeader", type, size: body.length }), pad(body)]);
}

const top = header({ name: "./", type: "5", mode: 0o755 });
const end = Buffer.alloc(1024);

interface Outcome {
  members: CheckedMember[];
  output: Buffer;
}

function run(bytes: Buffer, options: CheckOptions = {}, chunk = bytes.length || 1): Outcome {
  const members: CheckedMember[] = [];
  const check = new DirectoryArchiveCheck(true, { ...options, onMember: (m) => members.push(m) });
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) out.push(...check.push(bytes.subarray(i, i + chunk)));
  out.push(...check.end());
  return { members, output: Buffer.concat(out) };
}

function code(bytes: Buffer, options: CheckOptions = {}): string {
  try {
    run(bytes, options);
    return "accepted";
  } catch (error) {
    return error instanceof StrataError ? error.code : `not a StrataError: ${(error as Error).message}`;
  }
}

/** What GNU tar lists of an archive: names (as latin1) and type letters. */
function gnuList(bytes: Buffer): string[] {
  const result = spawnSync("tar", ["-tvf", "-"], { input: bytes, env: { ...process.env, LC_ALL: "C" } });
  assert.equal(result.status, 0, result.stderr.toString());
  return result.stdout.toString("latin1").split("\n").filter(Boolean).map((line) => `${line[0]} ${line.split(/ +/).slice(5).join(" ")}`);
}

function gnuExtract(bytes: Buffer): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "strata-tar-check-"));
  const result = spawnSync("tar", ["-xf", "-", "-C", dir], { input: bytes, env: { ...process.env, LC_ALL: "C" } });
  assert.equal(result.status, 0, result.stderr.toString());
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test("a plain archive passes whole; GNU tar reads the normalized one as the check did, whatever the chunking", () => {
  const bytes = Buffer.concat([
    top,
    header({ name: "./d/", type: "5", mode: 0o750 }),
    file("./d/a.txt", "hello", { mode: 0o4711, uid: 1234 }),
    header({ name: "./d/link", type: "2", linkname: "a.txt" }),
    header({ name: "./hard", type: "1", linkname: "./d/a.txt" }),
    file("./big", Buffer.alloc(70000, 7)),
    end,
    Buffer.alloc(512 * 14), // the zeros GNU tar pads a record with
  ]);
  const whole = run(bytes);
  assert.deepEqual(whole.members.map((m) => [m.kind, m.name, m.linkname, m.size]), [
    ["directory", ".", "", 0],
    ["directory", "d", "", 0],
    ["file", "d/a.txt", "", 5],
    ["symlink", "d/link", "a.txt", 0],
    ["hardlink", "hard", "d/a.txt", 0],
    ["file", "big", "", 70000],
  ]);
  assert.equal(whole.members[2]!.mode, 0o4711);
  assert.equal(whole.members[2]!.uid, 1234);
  for (const size of [1, 7, 511, 512, 513, 4096]) assert.deepEqual(run(bytes, {}, size).output, whole.output, `chunk ${size}`);
  assert.deepEqual(gnuList(whole.output), ["d ./", "d ./d/", "- ./d/a.txt", "l ./d/link -> a.txt", "h ./hard link to ./d/a.txt", "- ./big"]);
  const { dir, cleanup } = gnuExtract(whole.output);
  try {
    assert.equal(readFileSync(join(dir, "d/a.txt"), "utf8"), "hello");
    assert.equal(readlinkSync(join(dir, "d/link")), "a.txt");
    assert.equal(statSync(join(dir, "hard")).ino, statSync(join(dir, "d/a.txt")).ino);
    assert.deepEqual(readFileSync(join(dir, "big")), Buffer.alloc(70000, 7));
  } finally {
    cleanup();
  }
});

test("a block device hidden behind a pax size record is found and refused", () => {
  // the ustar size (1024) hides the next two blocks from a reader that skips pax
  // records; tar honours the pax size (0) and reads the device header next
  const hidden = Buffer.concat([
    top,
    pax([["size", "0"]]),
    header({ name: "./innocent", size: 1024 }),
    header({ name: "./sda", type: "4" }),
    Buffer.alloc(512),
    end,
  ]);
  assert.equal(code(hidden), "archive_unsafe_path");
  // the other way round: a pax size larger than the header's holds the device header as content
  const content = Buffer.concat([header({ name: "./sda", type: "4" }), Buffer.alloc(512, 1)]);
  const asData = Buffer.concat([top, pax([["size", String(content.length)]]), header({ name: "./data", size: 0 }), content, end]);
  const outcome = run(asData);
  assert.deepEqual(outcome.members.map((m) => [m.name, m.size]), [[".", 0], ["data", 1024]]);
  assert.deepEqual(gnuList(outcome.output), ["d ./", "- ./data"]);
});

test("special files are refused with the code the caller gives", () => {
  for (const type of ["3", "4", "6"]) {
    const bytes = Buffer.concat([top, header({ name: "./special", type }), end]);
    assert.equal(code(bytes), "archive_unsafe_path", type);
    assert.equal(code(bytes, { specialCode: "special_file_unsupported" }), "special_file_unsupported", type);
  }
});

test("what the check does not read the same way tar does is refused", () => {
  const cases: [string, Buffer][] = [
    ["base-256 size", Buffer.concat([top, header({ name: "./f", rawSize: Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]) }), pad(Buffer.from("hello")), end])],
    ["global pax header", Buffer.concat([top, pax([["path", "x"]], "g"), file("./f", "x"), end])],
    ["sparse pax record", Buffer.concat([top, pax([["GNU.sparse.size", "100"]]), file("./f", "x"), end])],
    ["unknown pax record", Buffer.concat([top, pax([["SCHILY.devmajor", "8"]]), file("./f", "x"), end])],
    ["a pax record twice", Buffer.concat([top, pax([["path", "a"], ["path", "b"]]), file("./f", "x"), end])],
    ["two pax headers for one member", Buffer.concat([top, pax([["path", "./a"]]), pax([["linkpath", "b"]]), file("./f", "x"), end])],
    ["pax path and GNU long name", Buffer.concat([top, pax([["path", "./a"]]), file("././@LongLink", "./b\0", { type: "L", magic: "gnu" }), file("./f", "x"), end])],
    ["GNU sparse member", Buffer.concat([top, header({ name: "./s", type: "S", magic: "gnu" }), end])],
    ["unknown type", Buffer.concat([top, header({ name: "./u", type: "Z" }), end])],
    ["v7 header", Buffer.concat([top, file("./f", "x", { magic: "v7" }), end])],
    ["damaged checksum", Buffer.concat([top, (() => { const h = header({ name: "./f" }); h[3] = 0x41; return h; })(), end])],
    ["malformed pax", Buffer.concat([top, file("././@PaxHeader", "99 path=x\n", { type: "x" }), file("./f", "x"), end])],
    ["data after the end", Buffer.concat([top, end, file("./late", "x")])],
    ["absolute name", Buffer.concat([top, file("/etc/passwd", "x"), end])],
    ["climbing name", Buffer.concat([top, file("./a/../../x", "x"), end])],
    ["NUL in a pax path", Buffer.concat([top, pax([["path", "./ok\0../../x"]]), file("./f", "x"), end])],
    ["name twice", Buffer.concat([top, file("./f", "one"), file("./f", "two"), end])],
    ["name twice, spelled differently", Buffer.concat([top, header({ name: "./d/", type: "5" }), header({ name: "d", type: "5" }), end])],
    ["top twice", Buffer.concat([top, top, end])],
    ["directory over a link the archive made", Buffer.concat([top, header({ name: "./l", type: "2", linkname: "/" }), header({ name: "./l/", type: "5" }), file("./l/x", "x"), end])],
    ["member under a link the archive made", Buffer.concat([top, header({ name: "./l", type: "2", linkname: "/etc" }), file("./l/passwd", "x"), end])],
    ["member under a file", Buffer.concat([top, file("./f", "x"), file("./f/g", "x"), end])],
    ["member under a directory not in the archive", Buffer.concat([top, file("./nowhere/g", "x"), end])],
    ["hard link to a directory", Buffer.concat([top, header({ name: "./d/", type: "5" }), header({ name: "./h", type: "1", linkname: "./d" }), end])],
    ["hard link out of the archive", Buffer.concat([top, header({ name: "./h", type: "1", linkname: "../../etc/shadow" }), end])],
    ["hard link to a later member", Buffer.concat([top, header({ name: "./h", type: "1", linkname: "./f" }), file("./f", "x"), end])],
    ["a link with content", Buffer.concat([top, file("./l", "data", { type: "2", linkname: "x" }), end])],
    ["a file as the top", Buffer.concat([file("./", "x"), end])],
  ];
  for (const [what, bytes] of cases) assert.equal(code(bytes), "archive_unsafe_path", what);
  assert.equal(code(Buffer.concat([top, file("./f", "x")])), "archive_truncated");
  assert.equal(code(Buffer.concat([top, header({ name: "./f", size: 1000 }), Buffer.alloc(512, 1)])), "archive_truncated");
});

test("names too long to restore are path_too_long; the longest that restores passes", () => {
  const part = "p".repeat(200);
  const deep = (length: number) => {
    const parts: string[] = [];
    let name = "";
    while (name.length < length) {
      const next = part.slice(0, Math.min(200, length - name.length - (name ? 1 : 0)));
      if (!next) break;
      parts.push(next);
      name = parts.join("/");
    }
    return parts;
  };
  const archive = (parts: string[]) => {
    const members = [top];
    for (let i = 1; i < parts.length; i++) members.push(pax([["path", `./${parts.slice(0, i).join("/")}/`]]), header({ name: "./x", type: "5" }));
    members.push(pax([["path", `./${parts.join("/")}`]]), file("./x", "deep"));
    return Buffer.concat([...members, end]);
  };
  const fits = deep(maxNameBytes);
  assert.equal(fits.join("/").length, maxNameBytes);
  const outcome = run(archive(fits));
  assert.equal(outcome.members.at(-1)!.name, fits.join("/"));
  assert.equal(gnuList(outcome.output).at(-1), `- ./${fits.join("/")}`);
  assert.equal(code(archive(deep(maxNameBytes + 1))), "path_too_long");
  assert.equal(code(Buffer.concat([top, pax([["path", `./${"n".repeat(256)}`]]), file("./x", "x"), end])), "path_too_long");
  assert.equal(code(Buffer.concat([top, pax([["path", `./${"n".repeat(255)}`]]), file("./x", "x"), end])), "accepted");
});

test("a name of every byte but '/' and NUL, GNU long names and prefixes come out as they went in", () => {
  const bytes: number[] = [];
  for (let i = 1; i < 256; i++) if (i !== 0x2f) bytes.push(i);
  const every = Buffer.from(bytes);
  const archive = Buffer.concat([
    top,
    pax([["path", Buffer.concat([Buffer.from("./"), every])]]),
    file("./x", "every byte"),
    file("././@LongLink", `./${"g".repeat(150)}\0`, { type: "L", magic: "gnu" }),
    file("./x", "gnu", { magic: "gnu" }),
    header({ name: "sub/", type: "5", prefix: "." }),
    file("f", "prefixed", { prefix: "./sub" }),
    end,
  ]);
  const outcome = run(archive);
  assert.deepEqual(outcome.members.map((m) => Buffer.from(m.name, "latin1")), [Buffer.from("."), every, Buffer.from("g".repeat(150)), Buffer.from("sub"), Buffer.from("sub/f")]);
  const { dir, cleanup } = gnuExtract(outcome.output);
  try {
    const names = readdirSync(dir, { encoding: "buffer" });
    assert.ok(names.some((name) => name.equals(every)), "the name of every byte is made as it was");
    assert.equal(readFileSync(join(dir, "g".repeat(150)), "utf8"), "gnu");
    assert.equal(readFileSync(join(dir, "sub/f"), "utf8"), "prefixed");
  } finally {
    cleanup();
  }
});

test("excluded members are left out with their content and everything under them", () => {
  const bytes = Buffer.concat([
    top,
    header({ name: "./cache/", type: "5" }),
    header({ name: "./cache/fifo", type: "6" }),
    file("./cache/big", Buffer.alloc(3000, 1)),
    file("./keep", "kept"),
    end,
  ]);
  assert.equal(code(bytes, { specialCode: "special_file_unsupported" }), "special_file_unsupported");
  const outcome = run(bytes, { exclude: (relative) => relative === "cache" || relative.startsWith("cache/") });
  assert.deepEqual(outcome.members.map((m) => m.name), [".", "keep"]);
  assert.deepEqual(gnuList(outcome.output), ["d ./", "- ./keep"]);
});

test("for the engine's archive API, relative links that climb out of the top are refused before it starts", () => {
  const links = (target: string, at = "./sub/link") => Buffer.concat([top, header({ name: "./sub/", type: "5" }), header({ name: at, type: "2", linkname: target }), end]);
  for (const target of ["../../etc", "../../../../x", "..//../y", "./../../z"]) {
    assert.equal(code(links(target), { linksStayInside: true }), "archive_unsafe_path", target);
    assert.equal(code(links(target)), "accepted", target);
  }
  for (const target of ["../x", "../sub/../x", "/etc/passwd", "x/../../y", "."]) assert.equal(code(links(target), { linksStayInside: true }), "accepted", target);
  assert.equal(code(links("..", "./up"), { linksStayInside: true }), "archive_unsafe_path");
});

test("with implicit parents, members may come without their directories; a parent the archive made otherwise is refused", () => {
  const options = { implicitParents: true };
  const few = Buffer.concat([file("a/b/c.txt", "c"), header({ name: "a/", type: "5", mode: 0o700 }), file("d.txt", "d"), end]);
  assert.equal(code(few), "archive_unsafe_path");
  const outcome = run(few, options);
  assert.deepEqual(outcome.members.map((m) => [m.kind, m.name]), [["file", "a/b/c.txt"], ["directory", "a"], ["file", "d.txt"]]);
  assert.deepEqual(gnuList(outcome.output), ["- ./a/b/c.txt", "d ./a/", "- ./d.txt"]);
  assert.equal(code(Buffer.concat([header({ name: "a/", type: "5" }), header({ name: "a/", type: "5" }), end]), options), "archive_unsafe_path");
  assert.equal(code(Buffer.concat([file("a/b", "x"), header({ name: "a/", type: "5" }), header({ name: "a/", type: "5" }), end]), options), "archive_unsafe_path");
  assert.equal(code(Buffer.concat([file("a/b", "x"), file("a", "now a file"), end]), options), "archive_unsafe_path");
  assert.equal(code(Buffer.concat([header({ name: "l", type: "2", linkname: "/etc" }), file("l/passwd", "x"), end]), options), "archive_unsafe_path");
  assert.equal(code(Buffer.concat([file("f", "x"), file("f/g", "x"), end]), options), "archive_unsafe_path");
});

test("a lower name limit for an extractor that adds a path of its own", () => {
  const bytes = Buffer.concat([top, pax([["path", `./${"n".repeat(200)}/`]]), header({ name: "./x", type: "5" }), pax([["path", `./${"n".repeat(200)}/${"m".repeat(200)}`]]), file("./x", "x"), end]);
  assert.equal(code(bytes), "accepted");
  assert.equal(code(bytes, { maxNameBytes: 401 }), "accepted");
  assert.equal(code(bytes, { maxNameBytes: 400 }), "path_too_long");
  assert.equal(code(bytes, { maxNameBytes: 100_000 }), "accepted");
});
