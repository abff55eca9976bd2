// Splits the engine's multiplexed attach stream (8-byte frame headers) into
// stdout and stderr chunks as they arrive.
import { Writable } from "node:stream";

export type StreamKind = "stdout" | "stderr";

/** A writable that parses frames and calls onChunk for each payload piece. */
export function demultiplexer(onChunk: (kind: StreamKind, data: Buffer) => void): Writable {
  let header = Buffer.alloc(0);
  let remaining = 0;
  let kind: StreamKind = "stdout";
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      let offset = 0;
      while (offset < chunk.length) {
        if (remaining === 0) {
          const need = 8 - header.length;
          header = Buffer.concat([header, chunk.subarray(offset, offset + need)]);
          offset += Math.min(need, chunk.length - offset);
          if (header.length < 8) break;
          kind = header[0] === 2 ? "stderr" : "stdout";
          remaining = header.readUInt32BE(4);
          header = Buffer.alloc(0);
          continue;
        }
        const take = Math.min(remaining, chunk.length - offset);
        onChunk(kind, chunk.subarray(offset, offset + take));
        offset += take;
        remaining -= take;
      }
      done();
    },
  });
}
