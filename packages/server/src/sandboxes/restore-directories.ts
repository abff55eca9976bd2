// Putting directory snapshots in place in a created (not yet started)
// container: checked and planned before anything is made, applied parent
// first, each blob verified as it streams.
import { posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { StrataError, type CreateSandboxRequest, type Snapshot } from "@strata/contract";
import type { Context } from "../context.js";
import { readySnapshot } from "../snapshots/find.js";
import { snapshotFromImageUri } from "../snapshots/pull.js";
import { hostUntar } from "../snapshots/host-tar.js";
import { ensureDirectory } from "./files.js";
import { PassThrough } from "node:stream";

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
    if (!raw.startsWith("/")) throw new StrataError("bad_request", `${field}/path must be absolute`);
    const path = posix.normalize(raw).replace(/\/+$/, "") || "/";
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
 * Puts the directories in place in the created container: on the host, in
 * its mounted root filesystem, when the engine keeps it here (several times
 * faster); else through the engine's archive API.
 */
export async function applyDirectoryRestores(ctx: Context, containerId: string, plan: DirectoryRestore[]): Promise<void> {
  if (!plan.length) return;
  const root = await ctx.engine.mountRootfs(containerId);
  if (!root) return applyThroughEngine(ctx, containerId, plan);
  try {
    for (const { snapshot, path } of plan) await hostUntar(root, path, ctx.blobs.read(snapshot.contentDigest!));
  } finally {
    await ctx.engine.unmountRootfs(containerId);
  }
}

async function applyThroughEngine(ctx: Context, containerId: string, plan: DirectoryRestore[]): Promise<void> {
  for (const { snapshot, path } of plan) {
    await ensureDirectory(ctx, containerId, path);
    const blob = ctx.blobs.read(snapshot.contentDigest!);
    const body = new PassThrough();
    const flowing = pipeline(blob, body);
    const [flowed, put] = await Promise.allSettled([flowing, ctx.engine.putArchive(containerId, path, body)]);
    if (flowed.status === "rejected") throw flowed.reason;
    if (put.status === "rejected") throw put.reason;
  }
}
