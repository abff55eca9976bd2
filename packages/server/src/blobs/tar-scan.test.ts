// The tar scanner and header writer agree with a real tar reader and writer.
import { test } from "node:test";
import assert from "node:assert/strict";
import tar from "tar-stream";
import { TarCounter, TarScanner, tarEnd, tarHeader, tarPadding, type TarEntry } from "./tar-scan.js";

async function archive(): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: "root/", type: "directory" });
  pack.entry({ name: "root/a.txt" }, "hello");
  pack.entry({ name: "root/big.bin" }, Buffer.alloc(70000, 7));
  pack.entry({ name: "root/" + "long-name-".repeat(20) + ".txt" }, "pax or gnu header needed");
  pack.entry({ name: "root/link", type: "symlink", linkname: "a.txt" });
  pack.entry({ name: "root/sub/", type: "directory" });
  pack.entry({ name: "root/sub/empty" }, "");
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test("counts files and directories whatever the chunking", async () => {
  const bytes = await archive();
  for (const size of [1, 7, 511, 512, 513, 4096, bytes.length]) {
    const counter = new TarCounter();
    for (let i = 0; i < bytes.length; i += size) counter.push(bytes.subarray(i, i + size));
    assert.deepEqual([counter.files, counter.directories], [5, 2], `chunk ${size}`);
  }
});

test("names and link targets of any length come out whole", async () => {
  const bytes = await archive();
  const entries: TarEntry[] = [];
  const scanner = new TarScanner((entry) => entries.push(entry));
  for (let i = 0; i < bytes.length; i += 333) scanner.push(bytes.subarray(i, i + 333));
  assert.deepEqual(entries.map((e) => [e.type, e.name, e.linkname]), [
    ["5", "root/", ""],
    ["0", "root/a.txt", ""],
    ["0", "root/big.bin", ""],
    ["0", "root/" + "long-name-".repeat(20) + ".txt", ""],
    ["2", "root/link", "a.txt"],
    ["5", "root/sub/", ""],
    ["0", "root/sub/empty", ""],
  ]);
  assert.equal(entries[2]!.size, 70000);
});

test("content comes out whole, without padding, whatever the chunking", async () => {
  const bytes = await archive();
  for (const size of [1, 100, 512, 4096, bytes.length]) {
    const contents = new Map<string, Buffer[]>();
    let current = "";
    const scanner = new TarScanner(
      (entry) => contents.set((current = entry.name), []),
      (piece) => contents.get(current)!.push(Buffer.from(piece)),
    );
    for (let i = 0; i < bytes.length; i += size) scanner.push(bytes.subarray(i, i + size));
    const text = (name: string) => Buffer.concat(contents.get(name)!);
    assert.equal(text("root/a.txt").toString(), "hello", `chunk ${size}`);
    assert.deepEqual(text("root/big.bin"), Buffer.alloc(70000, 7));
    assert.equal(text("root/" + "long-name-".repeat(20) + ".txt").toString(), "pax or gnu header needed");
    assert.equal(text("root/link").length, 0);
    assert.ok(scanner.atBoundary);
  }
});

test("a stream cut inside an entry is not at a boundary; a damaged header is refused", async () => {
  const bytes = await archive();
  const cut = new TarScanner(() => undefined);
  cut.push(bytes.subarray(0, 512 * 3 + 100));
  assert.equal(cut.atBoundary, false);
  const damaged = Buffer.from(bytes);
  damaged[512 + 10] = damaged[512 + 10]! ^ 0x20; // a byte of the second header's name
  assert.throws(() => new TarScanner(() => undefined).push(damaged), /checksum/);
});

test("written headers are read back by a real tar reader, long names through pax", async () => {
  const names = ["layer.tar", "a".repeat(100), `${"b".repeat(64)}/${"c".repeat(64)}`];
  const parts: Buffer[] = [];
  for (const [i, name] of names.entries()) {
    const data = Buffer.alloc(1000 + i, i + 1);
    parts.push(tarHeader(name, data.length), data, tarPadding(data.length));
  }
  parts.push(tarEnd);
  const extract = tar.extract();
  const seen: [string, number, string][] = [];
  extract.on("entry", (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk) => chunks.push(chunk as Buffer));
    stream.on("end", () => {
      const data = Buffer.concat(chunks);
      seen.push([header.name, data.length, header.type ?? ""]);
      assert.ok(data.every((byte) => byte === data[0]));
      next();
    });
  });
  const finished = new Promise<void>((resolve, reject) => {
    extract.on("finish", () => resolve());
    extract.on("error", reject);
  });
  extract.end(Buffer.concat(parts));
  await finished;
  assert.deepEqual(seen, names.map((name, i) => [name, 1000 + i, "file"]));
  const scanned: TarEntry[] = [];
  new TarScanner((entry) => scanned.push(entry)).push(Buffer.concat(parts));
  assert.deepEqual(scanned.map((e) => [e.name, e.size]), names.map((name, i) => [name, 1000 + i]));
});

test("a pax size record is honoured as tar honours it; a GNU header's time fields are no name prefix", () => {
  const header = (name: string, type: string, size: number, magic = "ustar\x0000", tail?: string) => {
    const block = Buffer.alloc(512);
    block.write(name, 0, 100, "latin1");
    block.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    block.write(type, 156, "latin1");
    block.write(magic, 257, "latin1");
    if (tail) block.write(tail, 345, "latin1");
    let sum = 8 * 0x20;
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += block[i]!;
    block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    return block;
  };
  const record = "10 size=0\n";
  const bytes = Buffer.concat([
    header("././@PaxHeader", "x", record.length), Buffer.from(record.padEnd(512, "\0")),
    header("innocent", "0", 1024),
    header("sda", "4", 0),
    header("gnu", "0", 0, "ustar  \0", "12345670123"),
    Buffer.alloc(1024),
  ]);
  const entries: TarEntry[] = [];
  new TarScanner((entry) => entries.push(entry)).push(bytes);
  assert.deepEqual(entries.map((e) => [e.type, e.name, e.size]), [["0", "innocent", 0], ["4", "sda", 0], ["0", "gnu", 0]]);
});
