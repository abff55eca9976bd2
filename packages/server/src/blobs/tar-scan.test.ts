// The header-only tar scanner agrees with a real tar writer.
import { test } from "node:test";
import assert from "node:assert/strict";
import tar from "tar-stream";
import { TarCounter, TarScanner, type TarEntry } from "./tar-scan.js";

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
