// Putting directory snapshots in place in a created (not yet started)
// container: checked and planned before anything is made, applied parent
// first, each blob verified as it streams.
import { StrataError, type CreateSandboxRequest, type Snapshot } from "@strata/contract";
import type { Context } from "../context.js";
import { readySnapshot } from "../snapshots/find.js";
import { snapshotFromImageUri } from "../snapshots/pull.js";
import { readlink } from "node:fs/promises";
import { hostUntar, openInRoot } from "../snapshots/host-tar.js";
import { ensureDirectory, putCheckedArchive } from "./files.js";
import { normalSandboxPath, pathError, refuseRuntimeManaged } from "./sandbox-path.js";

export interface DirectoryRestore {
  snapshot: Snapshot;
  path: string;
}

/**
 * Resolves and checks every entry (pulling those given by imageUri); refuses
 * bad paths and unknown snapshots before any container is made.
 */
export async function planDirectoryRestores(ctx: Context, entries: CreateSandboxRequest["directorySnapshots"]): Promise<DirectoryRestore[]> {
  const plan: DirectoryRestore[] = [];
  const seen = new Set<string>();
  for (const [i, entry] of (entries ?? []).entries()) {
    const field = `body/directorySnapshots/${i}`;
    if (!!entry.snapshotId === !!entry.imageUri) throw new StrataError("bad_request", `${field} needs exactly one of snapshotId and imageUri`);
    const snapshot = entry.imageUri ? await snapshotFromImageUri(ctx, entry.imageUri) : readySnapshot(ctx, entry.snapshotId!);
    if (snapshot.kind !== "directory" || !snapshot.contentDigest) {
      throw new StrataError("bad_request", `${field}: '${entry.snapshotId ?? entry.imageUri}' is a ${snapshot.kind} snapshot, not a directory snapshot`);
    }
    const raw = entry.path ?? snapshot.path!;
    const path = normalSandboxPath(raw, `${field}/path`);
    // a link in the image may still lead there: checked again, resolved, when the directory is made
    refuseRuntimeManaged(path, raw, { write: true });
    if (path === "/") {
      throw new StrataError("bad_request", `${field}/path: a directory cannot be restored over / (give a path)`);
    }
    if (seen.has(path)) throw new StrataError("bad_request", `${field}/path '${path}' appears twice in the request`);
    seen.add(path);
    if (!ctx.blobs.has(snapshot.contentDigest)) {
      throw new StrataError("blob_corrupt", `the archive of snapshot '${entry.snapshotId}' is missing from the store`);
    }
    plan.push({ snapshot, path });
  }
  // parents before children: fewer path segments first
  return plan.sort((a, b) => a.path.split("/").length - b.path.split("/").length);
}

/**
 * Puts the directories in place in the created container: on the host when
 * the engine keeps its files here (several times faster), else through the
 * engine's archive API.
 */
export async function applyDirectoryRestores(ctx: Context, containerId: string, plan: DirectoryRestore[]): Promise<void> {
  if (!plan.length) return;
  for (const [i, { snapshot, path }] of plan.entries()) {
    const target = await hostTarget(ctx, containerId, path);
    if (!target) return applyThroughEngine(ctx, containerId, plan.slice(i));
    await hostUntar(target.layer, target.path, ctx.blobs.read(snapshot.contentDigest!));
  }
}

/**
 * Where a restore to `path` goes in the container's writable layer. The path
 * is resolved (and made) in the mounted container's view, so links in its
 * image and in earlier restores are followed as the sandbox would follow
 * them, and the directory is copied up into the writable layer; then the
 * view is unmounted and the archive extracted straight into that layer, which
 * is plain disk: half again as fast as writing through the overlay.
 */
async function hostTarget(ctx: Context, containerId: string, path: string): Promise<{ layer: string; path: string } | null> {
  const mounted = await ctx.engine.mountRootfs(containerId);
  if (!mounted) return null;
  try {
    const handle = await openInRoot(mounted.root, path, { create: true });
    try {
      const stat = await handle.stat();
      await handle.chown(stat.uid, stat.gid); // a change of metadata copies the directory up
      const real = await readlink(`/proc/self/fd/${handle.fd}`);
      if (real !== mounted.root && !real.startsWith(`${mounted.root}/`)) throw new StrataError("internal", `'${path}' resolved outside the container (${real})`);
      const inside = real.slice(mounted.root.length) || "/";
      refuseRuntimeManaged(inside, path, { write: true });
      return { layer: mounted.writableLayer, path: inside };
    } finally {
      await handle.close();
    }
  } finally {
    await ctx.engine.unmountRootfs(containerId);
  }
}

async function applyThroughEngine(ctx: Context, containerId: string, plan: DirectoryRestore[]): Promise<void> {
  for (const { snapshot, path } of plan) {
    await restoreThroughEngine(ctx, containerId, snapshot, path).catch((error) => {
      throw pathError(error, path) ?? error;
    });
  }
}

async function restoreThroughEngine(ctx: Context, containerId: string, snapshot: Snapshot, path: string): Promise<void> {
  // only the missing directories are made (root, 0755, as the engine makes them); existing ones keep owner, mode and times
  const directory = await ensureDirectory(ctx, containerId, path);
  const blob = ctx.blobs.read(snapshot.contentDigest!);
  // the engine extracts on full host paths (its own prefix, about 100 bytes, then the path): PATH_MAX bounds the names
  const maxNameBytes = 4095 - 256 - Buffer.byteLength(directory) - 1;
  await putCheckedArchive(ctx, containerId, directory, blob, { linksStayInside: true, maxNameBytes });
}
