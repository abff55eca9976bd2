// Stream helpers shared by the engine client, archives and blobs, and the
// scope that ties every stream and child process a request (or a background
// job) makes to it: their errors fail that request or job, never the process,
// and whatever is still open when it ends is destroyed (children killed).
import { AsyncLocalStorage } from "node:async_hooks";
import type { ChildProcess, ChildProcessByStdio } from "node:child_process";
import type { EventEmitter } from "node:events";
import { PassThrough, Writable, type Readable } from "node:stream";

/** A node stream or a streamx one (tar-stream's): what a scope can adopt besides a child process. */
export interface StreamLike extends EventEmitter {
  readonly destroyed: boolean;
  destroy(error?: Error): unknown;
}

function isChild(thing: StreamLike | ChildProcess): thing is ChildProcess {
  return typeof (thing as ChildProcess).kill === "function" && "pid" in thing;
}

const currentScope = new AsyncLocalStorage<StreamScope>();

/**
 * The lifetime of one request's (or background job's) streams, child
 * processes and temporary files. `signal` aborts when the scope is aborted (the client went away, or
 * a stream failed with nobody listening). Everything adopted gets an error
 * listener, so its error reaches `onStrayError` instead of the process, and
 * is destroyed (a child: killed with SIGKILL) when the scope closes; deferred
 * cleanups run then too. A scope is entered with `run`; code running inside
 * it (and every callback it schedules) adopts through `adopt`.
 */
export class StreamScope {
  private readonly controller = new AbortController();
  private readonly streams = new Set<StreamLike>();
  private readonly children = new Set<ChildProcess>();
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  private closed = false;

  /** `onStrayError` hears each error no other code handled: a stream's error with no listener of its own, an uncaught throw. */
  constructor(private readonly onStrayError: (error: Error) => void = () => undefined) {}

  /** Aborted when the scope is: its reason says why. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Runs fn inside this scope: streams made by it and its callbacks are adopted here. */
  run<T>(fn: () => T): T {
    return currentScope.run(this, fn);
  }

  /** Ties a stream or child process (and its stdio) to this scope; returns it. */
  adopt<T extends StreamLike | ChildProcess>(thing: T): T {
    if (isChild(thing)) this.adoptChild(thing);
    else this.adoptStream(thing);
    return thing;
  }

  /** Runs cleanup when the scope closes (or now, when it already has). */
  defer(cleanup: () => Promise<void> | void): void {
    if (this.closed) void Promise.resolve().then(cleanup).catch(() => undefined);
    else this.cleanups.push(cleanup);
  }

  /** Aborts the signal; adopted streams are destroyed and children killed. */
  abort(reason: unknown): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
    this.release();
  }

  /** An error nobody handled: reported, and the scope aborted. */
  stray(error: Error): void {
    this.onStrayError(error);
    this.abort(error);
  }

  /** Ends the scope: what is still open is destroyed, children killed, cleanups run. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.release();
    for (const cleanup of this.cleanups.splice(0).reverse()) await Promise.resolve().then(cleanup).catch(() => undefined);
  }

  private release(): void {
    for (const stream of this.streams) stream.destroy();
    this.streams.clear();
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }

  private adoptStream(stream: StreamLike): void {
    if (stream.destroyed) return;
    // the scope's listener counts only when the stream's own code has none: then the error is stray
    stream.on("error", (error: Error) => {
      if (stream.listenerCount("error") === 1) this.stray(error);
    });
    if (this.closed || this.controller.signal.aborted) {
      stream.destroy();
      return;
    }
    this.streams.add(stream);
    stream.once("close", () => this.streams.delete(stream));
  }

  private adoptChild(child: ChildProcess): void {
    child.on("error", (error: Error) => {
      if (child.listenerCount("error") === 1) this.stray(error);
    });
    for (const stdio of [child.stdin, child.stdout, child.stderr]) if (stdio) this.adoptStream(stdio);
    if (this.closed || this.controller.signal.aborted) {
      child.kill("SIGKILL");
      return;
    }
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
  }
}

/** Ties a stream or child process to the scope of the request this code runs for, if any; returns it. */
export function adopt<T extends StreamLike | ChildProcess>(thing: T): T {
  currentScope.getStore()?.adopt(thing);
  return thing;
}

// the guard is one process-wide listener shared by every server in the process, held while any runs
let guards = 0;
const onUncaught = (error: Error) => {
  const scope = currentScope.getStore();
  if (scope) return scope.stray(error);
  if (process.listenerCount("uncaughtException") > 1) return; // another handler decides
  // no request to blame and nobody else listening: what node does by default
  process.stderr.write(`${error?.stack ?? String(error)}\n`);
  process.exit(1);
};

/**
 * While held, an exception nothing caught that was thrown for a request (an
 * `error` event without listener on a stream it made, a throw in one of its
 * callbacks) fails that request's scope instead of ending the process.
 * Anything else behaves as without it. Returns the release.
 */
export function holdStrayErrorGuard(): () => void {
  if (guards++ === 0) process.on("uncaughtException", onUncaught);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (--guards === 0) process.off("uncaughtException", onUncaught);
  };
}

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
  adopt(child);
  const out = adopt(new PassThrough({ highWaterMark: 1024 * 1024 }));
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
