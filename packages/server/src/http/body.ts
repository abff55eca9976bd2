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
  try {
    await pipeline(body, count, createWriteStream(path, { flags: "wx", mode: 0o600 }), { signal: request.scope.signal });
  } catch (error) {
    await rm(path, { force: true }); // now too: the scope may have closed before the file was made
    if (error instanceof StrataError) throw error;
    throw new StrataError("bad_request", `the request body was cut short after ${size} bytes`, { cause: error });
  }
  return { path, size };
}
