// Capturing a directory snapshot: an archive of the path (entries relative
// to it, so the digest does not depend on where it came from),
// filtered by the excludes, streamed into a content-addressed blob.
import { posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type Snapshot } from "@strata/contract";
import picomatch from "picomatch";
import tar from "tar-stream";
import type { StoredBlob } from "../blobs/store.js";
import type { Context } from "../context.js";
import { refuseRuntimeManaged, resolveSandboxPath } from "../sandboxes/sandbox-path.js";
import { hostTar } from "./host-tar.js";
import type { ManifestV1 } from "./manifest.js";
import { markReady } from "./ready.js";

/** The archive path that yields entries relative to the directory (`./...`). */
export function archivePath(path: string): string {
  const normal = posix.normalize(path);
  return normal === "/" ? "/." : `${normal.replace(/\/+$/, "")}/.`;
}

/** A matcher for entry paths relative to the captured directory. */
export function excluder(patterns: string[]): (relative: string) => boolean {
  const cleaned = patterns.map((p) => p.replace(/^\.\//, "").replace(/^\/+/, "").replace(/\/+$/, "")).filter(Boolean);
  if (!cleaned.length) return () => false;
  const match = picomatch(cleaned, { dot: true });
  return (relative) => {
    const parts = relative.split("/").filter(Boolean);
    // a path is out when it or any directory above it matches
    for (let i = 1; i <= parts.length; i++) if (match(parts.slice(0, i).join("/"))) return true;
    return false;
  };
}

/** Re-packs a tar stream without the excluded entries. */
function filterTar(source: Readable, excluded: (relative: string) => boolean): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  extract.on("entry", (header, entry, next) => {
    const relative = header.name.replace(/^\.\/?/, "");
    if (relative && excluded(relative)) {
      entry.on("end", next);
      entry.resume();
      return;
    }
    const sink = pack.entry(header, (error) => (error ? extract.destroy(error) : next()));
    (entry as unknown as Readable).pipe(sink);
  });
  extract.on("finish", () => pack.finalize());
  pipeline(source, extract).catch((error) => pack.destroy(error));
  const out = new PassThrough();
  pipeline(pack as unknown as Readable, out).catch((error) => out.destroy(error));
  return out;
}

/**
 * Checks before the 202: the path, resolved as the sandbox resolves it (a
 * link to a directory is captured as the directory it points to), exists, is
 * a directory and is not one the runtime mounts over. path_invalid,
 * path_symlink_loop, path_not_found, path_runtime_managed, bad_request.
 */
export async function checkDirectory(ctx: Context, containerId: string, path: string): Promise<void> {
  const target = await resolveSandboxPath(ctx.engine, containerId, path, "body/path");
  refuseRuntimeManaged(target.path, path);
  if (target.missing.length) throw new StrataError("path_not_found", `'${path}' does not exist in the sandbox`);
  if (!target.stat.isDirectory) throw new StrataError("bad_request", `'${path}' is not a directory`);
}

/**
 * The directory as a tar stream: read on the host when the engine keeps the
 * running sandbox's files here (twice as fast), else the engine's archive.
 */
async function readDirectory(ctx: Context, containerId: string, path: string, signal: AbortSignal): Promise<Readable> {
  const root = await ctx.engine.hostRootfs(containerId);
  if (root) return hostTar(root, path, signal);
  return (await ctx.engine.getArchive(containerId, archivePath(path), signal)).tar;
}

export async function captureDirectory(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal): Promise<Snapshot> {
  const path = record.path!;
  const archive = await readDirectory(ctx, containerId, path, signal);
  const source = record.exclude?.length ? filterTar(archive, excluder(record.exclude)) : archive;
  const blob = await ctx.blobs.writeTar(source, { limitBytes: ctx.config.maxSnapshotBytes, signal });
  try {
    if (signal.aborted) throw new StrataError("internal", "snapshot deleted while creating");
    return finish(ctx, record, blob);
  } finally {
    ctx.blobs.unpin(blob.digest);
  }
}

function finish(ctx: Context, record: Snapshot, blob: StoredBlob): Snapshot {
  const path = record.path!;
  const manifest: ManifestV1 = {
    schemaVersion: 1,
    id: record.id,
    kind: "directory",
    sandboxId: record.sandboxId,
    parent: record.parent ? { id: record.parent, digest: record.parentDigest ?? null } : null,
    baseImage: record.baseImage,
    labels: record.labels,
    content: {
      blobDigest: blob.digest,
      sizeBytes: blob.sizeBytes,
      fileCount: blob.fileCount,
      path,
      ...(record.exclude?.length ? { exclude: record.exclude } : {}),
    },
    createdAt: record.createdAt,
  };
  return markReady(ctx, manifest, { name: record.name, storedBytes: blob.storedBytes });
}
