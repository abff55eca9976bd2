// Stream helpers shared by the engine client, archives and blobs.
import { Transform } from "node:stream";

/**
 * Joins small chunks into writes of about 1 MiB: each write to a socket or a
 * pipe costs a system call (and on HTTP a chunk header), and streams such as
 * tar packs and network bodies hand over many small pieces.
 */
export function coalesce(size = 1024 * 1024): Transform {
  let parts: Buffer[] = [];
  let held = 0;
  const release = (stream: Transform) => {
    if (!held) return;
    stream.push(parts.length === 1 ? parts[0] : Buffer.concat(parts, held));
    parts = [];
    held = 0;
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      parts.push(chunk);
      held += chunk.length;
      if (held >= size) release(this);
      done();
    },
    flush(done) {
      release(this);
      done();
    },
  });
}
