// Downloading and uploading files through the engine's archive API: a file's
// bytes or a directory's tar out; a file's bytes or a tar in. Streams only.
// Every path is resolved as the sandbox resolves it (sandbox-path.ts) before
// the engine sees it; a write then makes only the directories that are
// missing, in a tar rooted at the deepest one that exists, because the
// engine's extraction gives a directory member's owner, mode and times to a
// directory already standing there.
import { randomUUID } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { posix } from "node:path";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type UploadResult } from "@strata/contract";
import tar from "tar-stream";
import type { Context } from "../context.js";
import type { ContainerInfo } from "../engine/engine.js";
import { engineError } from "../engine/errors.js";
import { checkedArchive, type CheckOptions } from "../blobs/tar-check.js";
import { runningSandbox } from "./lifecycle.js";
import { pathError, refuseRuntimeManaged, resolveSandboxPath, type ResolvedPath } from "./sandbox-path.js";

export interface Download {
  contentType: "application/octet-stream" | "application/x-tar";
  size?: number;
  stream: Readable;
}

/** Numeric owner of a file in the sandbox. */
export interface Owner {
  uid: number;
  gid: number;
}

const root: Owner = { uid: 0, gid: 0 };

/**
 * A file's bytes, or a tar of a directory, as the sandbox sees the path.
 * path_not_found, path_invalid, path_symlink_loop, path_runtime_managed;
 * path_changed when the sandbox swaps the path while it is read.
 */
export async function readFile(ctx: Context, idOrName: string, path: string, signal?: AbortSignal): Promise<Download> {
  const { containerId } = await runningSandbox(ctx, idOrName);
  try {
    const target = await resolveSandboxPath(ctx.engine, containerId, path, "query/path");
    refuseRuntimeManaged(target.path, path);
    if (target.missing.length) throw new StrataError("path_not_found", `'${path}' does not exist in the sandbox`);
    const archive = await ctx.engine.getArchive(containerId, target.path, signal);
    // the engine resolved the path again: it must still be what the walk found
    if (archive.stat.isSymlink || archive.stat.isDirectory !== target.stat.isDirectory) {
      archive.tar.destroy();
      throw new StrataError("path_changed", `'${path}' changed in the sandbox while it was read; try again`);
    }
    if (target.stat.isDirectory) return { contentType: "application/x-tar", stream: archive.tar };
    const file = await firstEntry(archive.tar, path);
    return { contentType: "application/octet-stream", size: file.size, stream: file.stream };
  } catch (error) {
    throw pathError(error, path) ?? engineError(error, "read file");
  }
}

/**
 * The content of the single file in a tar stream, once its header has come
 * (so a reply is only started for a file that is there): path_changed when
 * the archive ends or breaks before it, or holds something else.
 */
function firstEntry(archive: Readable, path: string): Promise<{ size: number; stream: Readable }> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    const out = new PassThrough();
    let found = false;
    const changed = () => new StrataError("path_changed", `'${path}' changed in the sandbox while it was read; try again`);
    extract.on("entry", (header, entry, next) => {
      if (!found && header.type === "file") {
        found = true;
        entry.on("error", (error) => out.destroy(error));
        entry.on("end", () => {
          out.end();
          next();
        });
        (entry as unknown as Readable).pipe(out, { end: false });
        resolve({ size: header.size ?? 0, stream: out });
      } else {
        entry.on("end", next);
        entry.resume();
      }
    });
    extract.on("finish", () => {
      if (!found) reject(changed());
    });
    extract.on("error", (error) => {
      if (found) out.destroy(error);
      else reject(changed());
    });
    out.on("close", () => archive.destroy());
    archive.on("error", (error) => extract.destroy(error));
    archive.pipe(extract);
  }).catch((error) => {
    archive.destroy();
    throw error;
  }) as Promise<{ size: number; stream: Readable }>;
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

/** A small file of the sandbox (links followed inside it), or null when it is not there. */
async function readSmallFile(ctx: Context, containerId: string, path: string, limit = 1 << 20): Promise<Buffer | null> {
  let archive;
  try {
    archive = await ctx.engine.getArchive(containerId, path);
  } catch (error) {
    if (pathError(error, path)) return null;
    throw error;
  }
  if (archive.stat.isDirectory) {
    archive.tar.destroy();
    return null;
  }
  const file = await firstEntry(archive.tar, path).catch(() => null);
  if (!file) return null;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of file.stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      file.stream.destroy();
      return null;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Lines of a colon-separated account file (`/etc/passwd`, `/etc/group`) as fields. */
function accounts(text: Buffer | null): string[][] {
  if (!text) return [];
  return text.toString("utf8").split("\n").filter((line) => line && !line.startsWith("#")).map((line) => line.split(":"));
}

/**
 * The numeric owner `spec` (`user[:group]`, names or numbers) stands for in
 * the sandbox, by its own /etc/passwd and /etc/group, as the runtime decides
 * a process's user: a user without a group takes the group passwd gives it,
 * or 0 when passwd does not know a numeric user. "" is root. bad_request
 * naming `field` when a name is not in the sandbox's files.
 */
export async function ownerIn(ctx: Context, containerId: string, spec: string, field: string): Promise<Owner> {
  if (!spec) return root;
  const [user, group] = spec.split(":", 2) as [string, string | undefined];
  const numeric = (text: string) => (/^\d{1,10}$/.test(text) && Number(text) <= 0xfffffffe ? Number(text) : null);
  if (group !== undefined && numeric(user) !== null && numeric(group) !== null) return { uid: numeric(user)!, gid: numeric(group)! };
  const passwd = accounts(await readSmallFile(ctx, containerId, "/etc/passwd"));
  let uid = numeric(user);
  const entry = uid === null ? passwd.find((fields) => fields[0] === user) : passwd.find((fields) => numeric(fields[2] ?? "") === uid);
  if (uid === null) {
    if (!entry) throw new StrataError("bad_request", `${field}: the sandbox has no user '${user}' in /etc/passwd`);
    uid = numeric(entry[2] ?? "");
    if (uid === null) throw new StrataError("bad_request", `${field}: the sandbox's /etc/passwd gives user '${user}' no numeric id`);
  }
  let gid = entry ? numeric(entry[3] ?? "") ?? 0 : 0;
  if (group !== undefined) {
    const given = numeric(group);
    if (given !== null) gid = given;
    else {
      const found = accounts(await readSmallFile(ctx, containerId, "/etc/group")).find((fields) => fields[0] === group);
      const id = found ? numeric(found[2] ?? "") : null;
      if (id === null) throw new StrataError("bad_request", `${field}: the sandbox has no group '${group}' in /etc/group`);
      gid = id;
    }
  }
  return { uid, gid };
}

/** Owner and mode of an existing file, from the first header of its archive (the rest is not read). */
async function ownerAndMode(ctx: Context, containerId: string, path: string): Promise<Owner & { mode: number }> {
  const archive = (await ctx.engine.getArchive(containerId, path)).tar;
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let done = false;
    extract.on("entry", (header, entry) => {
      done = true;
      resolve({ uid: header.uid ?? 0, gid: header.gid ?? 0, mode: (header.mode ?? 0o644) & 0o7777 });
      entry.resume();
      archive.destroy();
      extract.destroy();
    });
    const fail = () => {
      if (!done) reject(new StrataError("path_changed", `'${path}' changed in the sandbox while it was read; try again`));
    };
    extract.on("finish", fail);
    extract.on("error", fail);
    archive.on("error", fail);
    archive.pipe(extract);
  });
}

/**
 * Makes the directories of `target` that do not exist yet, owned by `owner`
 * with mode 0755, in one tar rooted at the deepest directory that exists, so
 * existing directories keep their owner, mode and times. Returns the whole
 * path resolved. bad_request when it exists and is not a directory.
 */
export async function makeDirectories(
  ctx: Context, containerId: string, target: Pick<ResolvedPath, "existing" | "stat" | "missing">, owner: Owner = root,
): Promise<string> {
  const path = posix.join(target.existing, ...target.missing);
  if (!target.missing.length) {
    if (!target.stat.isDirectory) throw new StrataError("bad_request", `'${path}' exists and is not a directory`);
    return path;
  }
  const pack = tar.pack();
  const mtime = new Date();
  for (let i = 1; i <= target.missing.length; i++) {
    pack.entry({ name: `${target.missing.slice(0, i).join("/")}/`, type: "directory", mode: 0o755, uid: owner.uid, gid: owner.gid, mtime });
  }
  pack.finalize();
  await ctx.engine.putArchive(containerId, target.existing, pack as unknown as Readable);
  return path;
}

/**
 * Makes the directory at `path` (resolved as the sandbox would) and its
 * missing parents, owned by `owner`; returns its resolved path.
 */
export async function ensureDirectory(ctx: Context, containerId: string, path: string, owner: Owner = root): Promise<string> {
  const target = await resolveSandboxPath(ctx.engine, containerId, path);
  refuseRuntimeManaged(target.path, path, { write: true });
  return makeDirectories(ctx, containerId, target, owner);
}

/**
 * files_not_visible for a write a running gVisor sandbox would not see: with
 * runsc's default `--file-access=exclusive` the sandbox keeps its own cache
 * of its root filesystem and never looks again at what changes beneath it.
 */
async function refuseInvisibleWrite(ctx: Context, container: ContainerInfo | null): Promise<void> {
  if (container?.runtime !== "runsc" || container.state !== "running") return;
  const args = (await ctx.engine.runtimeArgs("runsc")) ?? [];
  const shared = args.some((arg, i) => arg === "--file-access=shared" || (arg === "--file-access" && args[i + 1] === "shared"));
  if (shared) return;
  throw new StrataError("files_not_visible",
    "this gVisor sandbox would not see the upload: the engine runs runsc with exclusive file access, so the sandbox caches its files " +
    "and never sees changes made beneath it (add \"--file-access=shared\" to runsc's runtimeArgs in the engine's daemon.json); " +
    "write files before the sandbox starts (directory snapshots) or from inside it (exec with stdin)");
}

export interface Upload {
  body: Readable;
  contentType: string;
  contentLength?: number;
  signal?: AbortSignal;
  /** `user[:group]` for what the upload creates (see ownerIn); default the sandbox's user. */
  owner?: string;
  /** Octal permissions of an uploaded file (octet-stream only). */
  mode?: string;
}

/**
 * Writes a file (octet-stream) or extracts a tar into a directory, at `path`
 * as the sandbox resolves it; returns the resolved path and the bytes read.
 * Only missing directories are made (owned by `owner` or the sandbox's
 * user); an overwritten file keeps its owner and mode unless the request
 * names them; a new file gets `owner` or the sandbox's user and `mode` or 0644.
 */
/**
 * Extracts a directory archive into `directory` of a container through the
 * engine, which reads only the archive the check wrote (blobs/tar-check.ts),
 * as host tar does: a member the check refuses never reaches the sandbox.
 * Rejects with the check's StrataError (`archive_unsafe_path`,
 * `archive_truncated`, ...) or the engine's failure; when the engine fails
 * first, the source stops being read.
 */
export async function putCheckedArchive(
  ctx: Context, containerId: string, directory: string, source: Readable, options: CheckOptions, signal?: AbortSignal,
): Promise<void> {
  const body = new PassThrough();
  const flowing = pipeline(source, checkedArchive(true, options), body);
  const put = ctx.engine.putArchive(containerId, directory, body, signal).catch((error: unknown) => {
    body.destroy();
    throw error;
  });
  const [flowed, putDone] = await Promise.allSettled([flowing, put]);
  const cutByEngine = flowed.status === "rejected" && (flowed.reason as { code?: string }).code === "ERR_STREAM_PREMATURE_CLOSE";
  if (flowed.status === "rejected" && !cutByEngine) throw flowed.reason;
  if (putDone.status === "rejected") throw putDone.reason;
  if (flowed.status === "rejected") throw flowed.reason;
}

export async function writeFile(ctx: Context, idOrName: string, path: string, upload: Upload): Promise<UploadResult> {
  const limit = ctx.config.maxUploadBytes;
  if (upload.contentLength !== undefined && upload.contentLength > limit) {
    upload.body.resume();
    throw new StrataError("payload_too_large", `the upload is ${upload.contentLength} bytes; the limit is ${limit}`);
  }
  const counter = { bytes: 0 };
  try {
    const { containerId } = await runningSandbox(ctx, idOrName);
    if (upload.mode !== undefined && upload.contentType === "application/x-tar") {
      throw new StrataError("bad_request", "query/mode applies to a file upload; a tar's members carry their own modes");
    }
    const container = await ctx.engine.inspectContainer(containerId);
    await refuseInvisibleWrite(ctx, container);
    const target = await resolveSandboxPath(ctx.engine, containerId, path, "query/path");
    refuseRuntimeManaged(target.path, path, { write: true });
    const owner = () => ownerIn(ctx, containerId, upload.owner ?? container?.user ?? "", upload.owner !== undefined ? "query/owner" : "the image's USER");
    if (upload.contentType === "application/x-tar") {
      const directory = await makeDirectories(ctx, containerId, target, await owner());
      // what the check refuses (devices, fifos, links that climb out, names twice) never reaches the sandbox
      const source = upload.body.pipe(limitBytes(limit, counter));
      upload.body.on("error", (error) => source.destroy(error));
      // a member under a path the runtime mounts over would land where the sandbox cannot see it
      const refuseHidden = (relative: string) => {
        refuseRuntimeManaged(posix.join(directory, relative), posix.join(path, relative), { write: true });
        return false;
      };
      await putCheckedArchive(ctx, containerId, directory, source, { implicitParents: true, linksStayInside: true, exclude: refuseHidden }, upload.signal);
      return { path: directory, bytes: counter.bytes };
    }
    if (path.endsWith("/")) throw new StrataError("bad_request", `'${path}' names a directory; give a file path`);
    let header: { name: string; uid: number; gid: number; mode: number };
    let directory: string;
    const mode = upload.mode !== undefined ? parseInt(upload.mode, 8) : undefined;
    if (!target.missing.length) {
      if (target.stat.isDirectory) throw new StrataError("bad_request", `'${path}' is a directory`);
      // an overwrite: the file keeps its owner and mode unless the request names them
      const kept = await ownerAndMode(ctx, containerId, target.path);
      const named = upload.owner !== undefined ? await owner() : kept;
      directory = posix.dirname(target.path);
      header = { name: posix.basename(target.path), uid: named.uid, gid: named.gid, mode: mode ?? kept.mode };
    } else {
      const made = await owner();
      directory = await makeDirectories(ctx, containerId, { existing: target.existing, stat: target.stat, missing: target.missing.slice(0, -1) }, made);
      header = { name: target.missing.at(-1)!, uid: made.uid, gid: made.gid, mode: mode ?? 0o644 };
    }
    await uploadOneFile(ctx, containerId, directory, header, upload, limit, counter);
    return { path: posix.join(directory, header.name), bytes: counter.bytes };
  } catch (error) {
    upload.body.resume();
    throw pathError(error, path) ?? engineError(error, "write file");
  }
}

/** A file's bytes wrapped as a one-entry tar; the size comes from Content-Length or a spool file. */
async function uploadOneFile(
  ctx: Context, containerId: string, directory: string, header: { name: string; uid: number; gid: number; mode: number },
  upload: Upload, limit: number, counter: { bytes: number },
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
    const entry = pack.entry({ ...header, size, mtime: new Date() }, (error) => {
      if (error) pack.destroy(error);
      else pack.finalize();
    });
    // every stream of the chain has a listener, and a failure anywhere ends the tar with it
    pipeline(source, limitBytes(limit, counter), entry).catch((error: Error) => pack.destroy(error));
    await ctx.engine.putArchive(containerId, directory, pack as unknown as Readable, upload.signal);
    if (counter.bytes !== size) throw new StrataError("bad_request", `the body ended after ${counter.bytes} of ${size} bytes`);
  } finally {
    if (spool) await rm(spool, { force: true });
  }
}
