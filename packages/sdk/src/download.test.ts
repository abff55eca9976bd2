// The reply reader undoes HTTP framing however the bytes are split.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReplyReader } from "./download.js";

const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));

function chunked(parts: Buffer[]): Buffer {
  const framed = parts.flatMap((part, i) => [Buffer.from(`${part.length.toString(16)}${i === 1 ? ";ext=1" : ""}\r\n`), part, Buffer.from("\r\n")]);
  return Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/zstd\r\n\r\n"), ...framed, Buffer.from("0\r\nX-Trailer: y\r\n\r\n")]);
}

/** Feeds `reply` in pieces of `size` bytes; returns the body and the reader. */
function read(reply: Buffer, size: number): { body: Buffer; reader: ReplyReader } {
  const reader = new ReplyReader();
  const out: Buffer[] = [];
  for (let i = 0; i < reply.length; i += size) out.push(...reader.push(reply.subarray(i, i + size)).map((piece) => Buffer.from(piece)));
  return { body: Buffer.concat(out), reader };
}

test("a chunked reply comes out whole, whatever the splits", () => {
  const reply = chunked([body.subarray(0, 1000), body.subarray(1000, 1001), body.subarray(1001)]);
  for (const size of [1, 2, 3, 7, 100, 1024, reply.length]) {
    const { body: got, reader } = read(reply, size);
    assert.deepEqual(got, body, `pieces of ${size}`);
    assert.equal(reader.status, 200);
    assert.ok(reader.done && reader.complete);
  }
});

test("a chunked reply cut short is not complete", () => {
  const reply = chunked([body]);
  const { reader } = read(reply.subarray(0, reply.length - 10), 64);
  assert.equal(reader.complete, false);
});

test("a reply with a length ends at it; one without runs to the close", () => {
  const sized = Buffer.concat([Buffer.from(`HTTP/1.1 404 Not Found\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  const { body: got, reader } = read(sized, 333);
  assert.deepEqual(got, body);
  assert.equal(reader.status, 404);
  assert.ok(reader.done);
  const open = Buffer.concat([Buffer.from("HTTP/1.0 200 OK\r\n\r\n"), body]);
  const toClose = read(open, 500);
  assert.deepEqual(toClose.body, body);
  assert.ok(!toClose.reader.done && toClose.reader.complete);
});

test("malformed framing is refused", () => {
  assert.throws(() => new ReplyReader().push(Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")), /chunk size/);
  assert.throws(() => new ReplyReader().push(Buffer.from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n")), /longer than its size/);
  assert.throws(() => new ReplyReader().push(Buffer.from("SSH-2.0\r\n\r\n")), /status line/);
});
