// Stream helpers shared by the engine client, archives and blobs.
import type { ChildProcessByStdio } from "node:child_process";
import { PassThrough, Writable, type Readable } from "node:stream";

/**
 * A child process's output as a stream that ends only once the child has
 * exited well, and fails otherwise, so a reader never takes a cut-short output
 * for a whole one. `failure` turns an exit into an error, or null when the
 * exit is acceptable. Closing the stream early kills the child.
 */
export function childOutput(
  child: ChildProcessByStdio<Writable | null, Readable, Readable>,
  failure: (code: number | null, signal: NodeJS.Signals | null, stderr: string) => Error | null,
): Readable {
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  let stderr = "";
  child.stderr.on("data", (data) => (stderr = (stderr + data).slice(-4000)));
  child.stdout.pipe(out, { end: false });
  child.on("error", (error) => out.destroy(error));
  child.on("close", (code, signal) => {
    const error = failure(code, signal, stderr.trim());
    if (error) out.destroy(error);
    else out.end();
  });
  out.on("close", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return out;
}

/**
 * A writable that hands what it is given to `dest` in batches of about
 * `size` bytes, each batch one corked write (one system call, no copy), and
 * ends `dest` when it ends. A batch is held until `dest` has taken the one
 * before it, which is the backpressure.
 */
export function batchedInto(dest: Writable, size = 1024 * 1024): Writable {
  let parts: Buffer[] = [];
  let held = 0;
  const flush = (done: (error?: Error | null) => void) => {
    const batch = parts;
    parts = [];
    held = 0;
    dest.cork();
    for (let i = 0; i < batch.length - 1; i++) dest.write(batch[i]);
    dest.write(batch[batch.length - 1], done);
    dest.uncork();
  };
  return new Writable({
    highWaterMark: size,
    write(chunk: Buffer, _encoding, done) {
      parts.push(chunk);
      held += chunk.length;
      if (held >= size) flush(done);
      else done();
    },
    final(done) {
      const end = () => dest.end(() => done());
      if (held) flush((error) => (error ? done(error) : end()));
      else end();
    },
    destroy(error, done) {
      if (error) dest.destroy(error);
      done(error);
    },
  });
}

/**
 * Writes `buffers` into `dest` as one corked write; resolves once `dest` has
 * handed them on (to the kernel, for a socket or pipe), so their memory can
 * be reused.
 */
export function writeAll(dest: Writable, buffers: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    if (dest.destroyed) return reject(new Error("the stream closed before taking everything"));
    dest.cork();
    for (let i = 0; i < buffers.length - 1; i++) dest.write(buffers[i]);
    dest.write(buffers[buffers.length - 1], (error) => (error ? reject(error) : resolve()));
    dest.uncork();
  });
}

/**
 * Calls `take` with each chunk of `source` as it arrives, pausing the stream
 * while a returned promise is pending. Unlike `for await`, which reads all
 * buffered chunks joined into one new buffer, this never copies. On a failure
 * the stream is left paused for the caller to drain or destroy.
 */
export function eachChunk(source: Readable, take: (chunk: Buffer) => Promise<void> | void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    let pending: Promise<void> | void;
    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      source.off("data", onData);
      source.pause();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      try {
        pending = take(chunk);
      } catch (error) {
        return fail(error as Error);
      }
      if (!pending) return;
      source.pause();
      pending.then(() => failed || source.resume(), fail);
    };
    source.on("data", onData);
    // the end can come while the last chunk is still being taken
    source.on("end", () => void Promise.resolve(pending).then(() => failed || resolve(), fail));
    source.on("error", fail);
    source.on("close", () => {
      if (!source.readableEnded) fail(new Error("the stream closed before its end"));
    });
    source.resume(); // a stream paused before (as by a peek at its head) does not flow by itself
  });
}
