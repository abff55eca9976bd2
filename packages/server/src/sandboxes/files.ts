// Downloading and uploading files through the engine's archive API: a file's
// bytes or a directory's tar out; a file's bytes or a tar in. Streams only.
import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { posix } from "node:path";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type UploadResult } from "@strata/contract";
import tar from "tar-stream";
import type { Context } from "../context.js";
import type { PathStat } from "../engine/engine.js";
import { engineError } from "../engine/errors.js";
import { runningSandbox } from "./lifecycle.js";

export interface Download {
  contentType: "application/octet-stream" | "application/x-tar";
  size?: number;
  stream: Readable;
}

async function statFollowing(ctx: Context, containerId: string, path: string): Promise<{ path: string; stat: PathStat } | null> {
  let current = path;
  for (let hop = 0; hop < 16; hop++) {
    const found = await ctx.engine.statPath(containerId, current);
    if (!found) return null;
    if (!found.isSymlink) return { path: current, stat: found };
    current = posix.resolve(posix.dirname(current), found.linkTarget);
  }
  throw new StrataError("bad_request", `too many symbolic links under '${path}'`);
}

export async function readFile(ctx: Context, idOrName: string, path: string, signal?: AbortSignal): Promise<Download> {
  const { containerId } = await runningSandbox(ctx, idOrName);
  try {
    const target = await statFollowing(ctx, containerId, path);
    if (!target) throw new StrataError("path_not_found", `'${path}' does not exist in the sandbox`);
    const archive = await ctx.engine.getArchive(containerId, target.path, signal);
    if (target.stat.isDirectory) return { contentType: "application/x-tar", stream: archive.tar };
    return { contentType: "application/octet-stream", size: target.stat.size, stream: await firstEntry(archive.tar) };
  } catch (error) {
    throw engineError(error, "read file");
  }
}

/** The content of the single file in a tar stream. */
async function firstEntry(archive: Readable): Promise<Readable> {
  const extract = tar.extract();
  const out = new PassThrough();
  let found = false;
  extract.on("entry", (header, entry, next) => {
    if (!found && header.type === "file") {
      found = true;
      entry.on("error", (error) => out.destroy(error));
      entry.on("end", () => {
        out.end();
        next();
      });
      (entry as unknown as Readable).pipe(out, { end: false });
    } else {
      entry.on("end", next);
      entry.resume();
    }
  });
  extract.on("finish", () => {
    if (!found) out.destroy(new StrataError("bad_request", "the path is not a regular file"));
  });
  extract.on("error", (error) => out.destroy(error));
  out.on("close", () => archive.destroy());
  archive.pipe(extract);
  return out;
}

/** Passes bytes through, failing with payload_too_large past the limit. */
function limitBytes(limit: number, counter: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      counter.bytes += chunk.length;
      if (counter.bytes > limit) done(new StrataError("payload_too_large", `the upload is larger than ${limit} bytes`));
      else done(null, chunk);
    },
  });
}

/** Makes the directory at path (and its parents) when it does not exist yet. */
export async function ensureDirectory(ctx: Context, containerId: string, path: string): Promise<void> {
  const found = await statFollowing(ctx, containerId, path);
  if (found) {
    if (!found.stat.isDirectory) throw new StrataError("bad_request", `'${path}' exists and is not a directory`);
    return;
  }
  const pack = tar.pack();
  const parts = path.split("/").filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    pack.entry({ name: `${parts.slice(0, i).join("/")}/`, type: "directory", mode: 0o755 });
  }
  pack.finalize();
  await ctx.engine.putArchive(containerId, "/", pack as unknown as Readable);
}

export interface Upload {
  body: Readable;
  contentType: string;
  contentLength?: number;
  signal?: AbortSignal;
}

export async function writeFile(ctx: Context, idOrName: string, path: string, upload: Upload): Promise<UploadResult> {
  const limit = ctx.config.maxUploadBytes;
  if (upload.contentLength !== undefined && upload.contentLength > limit) {
    upload.body.resume();
    throw new StrataError("payload_too_large", `the upload is ${upload.contentLength} bytes; the limit is ${limit}`);
  }
  const { containerId } = await runningSandbox(ctx, idOrName);
  const counter = { bytes: 0 };
  try {
    if (upload.contentType === "application/x-tar") {
      await ensureDirectory(ctx, containerId, path);
      await ctx.engine.putArchive(containerId, path, upload.body.pipe(limitBytes(limit, counter)), upload.signal);
      return { path, bytes: counter.bytes };
    }
    if (path === "/" || path.endsWith("/")) throw new StrataError("bad_request", `'${path}' names a directory; give a file path`);
    const existing = await ctx.engine.statPath(containerId, path);
    if (existing?.isDirectory) throw new StrataError("bad_request", `'${path}' is a directory`);
    await ensureDirectory(ctx, containerId, posix.dirname(path));
    await uploadOneFile(ctx, containerId, path, upload, limit, counter);
    return { path, bytes: counter.bytes };
  } catch (error) {
    upload.body.resume();
    throw engineError(error, "write file");
  }
}

/** A file's bytes wrapped as a one-entry tar; the size comes from Content-Length or a spool file. */
async function uploadOneFile(
  ctx: Context, containerId: string, path: string, upload: Upload, limit: number, counter: { bytes: number },
): Promise<void> {
  let source = upload.body;
  let size = upload.contentLength;
  let spool: string | undefined;
  try {
    if (size === undefined) {
      const dir = posix.join(ctx.config.home, "tmp");
      await mkdir(dir, { recursive: true });
      spool = posix.join(dir, `upload-${randomUUID()}`);
      await pipeline(upload.body, limitBytes(limit, { bytes: 0 }), createWriteStream(spool), { signal: upload.signal });
      size = (await stat(spool)).size;
      source = createReadStream(spool);
    }
    const pack = tar.pack();
    const entry = pack.entry({ name: posix.basename(path), size, mode: 0o644, mtime: new Date() }, (error) => {
      if (error) pack.destroy(error);
      else pack.finalize();
    });
    // every stream of the chain has a listener, and a failure anywhere ends the tar with it
    pipeline(source, limitBytes(limit, counter), entry).catch((error: Error) => pack.destroy(error));
    await ctx.engine.putArchive(containerId, posix.dirname(path), pack as unknown as Readable, upload.signal);
    if (counter.bytes !== size) throw new StrataError("bad_request", `the body ended after ${counter.bytes} of ${size} bytes`);
  } finally {
    if (spool) await rm(spool, { force: true });
  }
}
