// Capturing a directory snapshot: an archive of the path (entries relative
// to it, so the digest does not depend on where it came from), read through
// the same check every restore runs and stored in its normalized form, less
// the excludes, as a content-addressed blob. What the blob holds is what the
// sandbox sees, or the capture fails with a code: special files (devices,
// fifos, sockets) are `special_file_unsupported` (no restore path can make
// them as they were: gVisor sandboxes see no host fifo, and device numbers as
// 0,0), names too long to restore are `path_too_long`.
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type Snapshot } from "@strata/contract";
import picomatch from "picomatch";
import type { StoredBlob } from "../blobs/store.js";
import { checkedArchive, maxNameBytes } from "../blobs/tar-check.js";
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
async function readDirectory(ctx: Context, containerId: string, path: string, excluded: (relative: string) => boolean, signal: AbortSignal): Promise<Readable> {
  const root = await ctx.engine.hostRootfs(containerId);
  if (root) return hostTar(root, path, signal);
  await probeSandboxView(ctx, containerId, path, signal, { excluded, longPaths: true });
  return (await ctx.engine.getArchive(containerId, archivePath(path), signal)).tar;
}

/** A glob that matches itself only: `[`, `*`, `?` and `\` escaped. */
const literal = (text: string) => text.replace(/[[\]*?\\]/g, "\\$&");

/**
 * The engine's archive reads the container's files from the host, which is
 * not what every sandbox sees: a gVisor sandbox keeps its fifos and sockets
 * to itself, and the engine leaves out, with only a line in its own log,
 * sockets and paths longer than the host allows. So when the sandbox runs,
 * `find` inside it looks for what the archive would miss; any such entry not
 * excluded fails the capture with its code. An image without `find` is not
 * probed. `fifosOnly` for a container snapshot, whose commit leaves sockets
 * out on every runtime (a socket is made by its listener, not restored).
 */
export async function probeSandboxView(
  ctx: Context, containerId: string, path: string, signal: AbortSignal,
  options: { excluded?: (relative: string) => boolean; longPaths?: boolean; fifosOnly?: boolean } = {},
): Promise<void> {
  const excluded = options.excluded ?? (() => false);
  const container = await ctx.engine.inspectContainer(containerId);
  if (container?.state !== "running") return;
  const top = archivePath(path);
  const tooLong = `${literal(top)}/${"?".repeat(maxNameBytes)}*`;
  const types = options.fifosOnly ? ["-type", "p"] : ["-type", "p", "-o", "-type", "s", "-o", "-type", "c", "-o", "-type", "b"];
  const cmd = ["find", top, "-xdev", "(", ...types, ")", "-print",
    ...(options.longPaths ? ["-o", "-path", tooLong, "-print"] : [])];
  const found: Buffer[] = [];
  let outcome;
  try {
    outcome = await ctx.engine.exec(containerId, { cmd, timeoutMs: 120_000 }, { onOutput: (kind, data) => kind === "stdout" && found.push(data), signal });
  } catch {
    return; // no `find` in the image: the exec is refused
  }
  if (outcome.exitCode === 126 || outcome.exitCode === 127) return;
  for (const line of Buffer.concat(found).toString("utf8").split("\n")) {
    if (!line.startsWith(`${top}/`)) continue;
    const relative = line.slice(top.length + 1);
    if (excluded(relative)) continue;
    if (Buffer.byteLength(relative) > maxNameBytes) {
      throw new StrataError("path_too_long", `'${relative.slice(0, 200)}...' is longer than ${maxNameBytes} bytes below the directory; it cannot be restored`);
    }
    throw new StrataError("special_file_unsupported", `'${relative}' is a special file (device, fifo or socket): the snapshot could not keep it as the sandbox sees it`);
  }
}

export async function captureDirectory(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal): Promise<Snapshot> {
  const path = record.path!;
  const excluded = excluder(record.exclude ?? []);
  const archive = await readDirectory(ctx, containerId, path, excluded, signal);
  const check = checkedArchive(true, { specialCode: "special_file_unsupported", exclude: excluded });
  // a failure either side ends both (and the tar or the engine's reply behind the archive)
  pipeline(archive, check).catch(() => undefined);
  const blob = await ctx.blobs.writeTar(check, { limitBytes: ctx.config.maxSnapshotBytes, signal });
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
