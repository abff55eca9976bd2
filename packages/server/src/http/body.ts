// Raw request bodies (file uploads) read whole to a temporary file before any
// of it reaches a sandbox, so a client that stops halfway changes nothing.
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError } from "@strata/contract";
import type { FastifyRequest } from "fastify";

/** Requests whose body a refusal left unread: their reply closes the connection rather than drain it. */
const unread = new WeakSet<object>();

/** Whether a refusal left this request's body unread (see `spoolBody`). */
export function bodyLeftUnread(request: FastifyRequest): boolean {
  return unread.has(request.raw) && !request.raw.complete;
}

export interface SpooledBody {
  /** The temporary file; removed when the request's scope closes. */
  path: string;
  /** Its size in bytes. */
  size: number;
}

/**
 * Reads the request's raw body into a new file under `<home>/tmp`, failing
 * with `payload_too_large` past `limit` bytes (checked against Content-Length
 * first, then while reading) and `bad_request` when the body ends before its
 * Content-Length. The file lives as long as the request.
 */
export async function spoolBody(request: FastifyRequest, home: string, limit: number): Promise<SpooledBody> {
  const body = request.body as Readable;
  const declared = request.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    throw new StrataError("payload_too_large", `the upload is ${declared} bytes; the limit is ${limit}`);
  }
  request.scope.signal.throwIfAborted();
  const dir = join(home, "tmp");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `upload-${randomUUID()}`);
  request.scope.defer(() => rm(path, { force: true }));
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit) done(new StrataError("payload_too_large", `the upload is larger than ${limit} bytes`));
      else done(null, chunk);
    },
  });
  // The body is piped, not part of the pipeline: a refusal of ours must not destroy the request,
  // which would read as the client leaving (the reply would be `cancelled`, not the 413).
  const written = pipeline(count, createWriteStream(path, { flags: "wx", mode: 0o600 }), { signal: request.scope.signal });
  const cut = (error: Error) => count.destroy(error);
  body.once("error", cut);
  body.pipe(count);
  try {
    await written;
  } catch (error) {
    body.unpipe(count);
    if (!body.readableEnded) {
      // the rest of the body stays unread: the reply closes the connection rather than drain it
      body.pause();
      unread.add(request.raw);
    }
    await rm(path, { force: true }); // now too: the scope may have closed before the file was made
    if (error instanceof StrataError) throw error;
    throw new StrataError("bad_request", `the request body was cut short after ${size} bytes`, { cause: error });
  } finally {
    body.off("error", cut);
  }
  return { path, size };
}
