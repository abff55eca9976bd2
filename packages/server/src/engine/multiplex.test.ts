// The engine's attach-stream framing, split at every possible byte boundary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { demultiplexer } from "./multiplex.js";

function frame(kind: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

test("frames are reassembled whatever the chunk boundaries", async () => {
  const stream = Buffer.concat([frame(1, "hello "), frame(2, "oops"), frame(1, "world"), frame(2, "")]);
  for (let cut = 1; cut < stream.length; cut++) {
    const seen = { stdout: "", stderr: "" };
    const sink = demultiplexer((kind, data) => (seen[kind] += data.toString()));
    await new Promise<void>((resolve) => {
      sink.write(stream.subarray(0, cut));
      sink.end(stream.subarray(cut), resolve);
    });
    assert.deepEqual(seen, { stdout: "hello world", stderr: "oops" }, `cut at ${cut}`);
  }
});
