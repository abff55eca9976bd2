// Startup recovery of snapshots: clear temp files and the empty directories
// a crash leaves before a snapshot's first record is in, rebuild the index
// from the store, resolve captures a crash interrupted (finished when the
// engine has the image, failed otherwise) and finish interrupted deletes.
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Snapshot } from "@strata/contract";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import { finishContainerSnapshot, markFailed } from "./create.js";
import { removeSnapshotArtifacts } from "./delete.js";
import type { StoreScan } from "./store.js";

export interface ReindexReport {
  snapshots: number;
  malformed: { id: string; reason: string }[];
}

/** Rebuilds the index from the manifests and records on disk. */
export function reindexSnapshots(ctx: Context): ReindexReport {
  const scan = rebuildIndex(ctx);
  return { snapshots: scan.snapshots.length, malformed: scan.malformed };
}

function rebuildIndex(ctx: Context): StoreScan {
  const scan = ctx.snapshots.scan();
  ctx.index.replaceSnapshots(scan.snapshots);
  for (const bad of scan.malformed) ctx.config.log({ event: "snapshot_malformed", snapshotId: bad.id, reason: bad.reason });
  return scan;
}

export async function recoverSnapshots(ctx: Context): Promise<void> {
  ctx.snapshots.cleanTemp();
  for (const id of ctx.snapshots.removeEmptyDirs()) ctx.config.log({ event: "snapshot_dir_removed", snapshotId: id, reason: "empty: a crash came before its record" });
  ctx.blobs.cleanTemp();
  rmSync(join(ctx.config.home, "tmp"), { recursive: true, force: true });
  for (const snapshot of rebuildIndex(ctx).snapshots) {
    if (snapshot.status === "creating") await resolveInterrupted(ctx, snapshot);
    else if (snapshot.status === "deleting") await removeSnapshotArtifacts(ctx, snapshot);
  }
}

/**
 * A capture the crash cut off. The engine may still be committing (it keeps
 * the source paused until done), so wait in the background while the source
 * is paused, then finish when the image exists and fail otherwise.
 */
async function resolveInterrupted(ctx: Context, snapshot: Snapshot): Promise<void> {
  ctx.jobs.run(snapshot.id, async (signal) => {
    const containerId = ctx.index.findSandbox(snapshot.sandboxId)?.containerId;
    const deadline = Date.now() + 120_000;
    while (containerId && Date.now() < deadline && !signal.aborted) {
      const container = await ctx.engine.inspectContainer(containerId);
      if (container?.state !== "paused") break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (signal.aborted) return;
    await settleInterrupted(ctx, snapshot);
  });
}

/** A memory capture cut off after its checkpoint leaves the source stopped: start it from the checkpoint, or afresh. */
async function restartCheckpointedSource(ctx: Context, snapshot: Snapshot): Promise<void> {
  const containerId = ctx.index.findSandbox(snapshot.sandboxId)?.containerId;
  if (!containerId) return;
  const container = await ctx.engine.inspectContainer(containerId).catch(() => null);
  if (!container || container.state === "running") return;
  const name = `strata-${snapshot.id}`;
  await ctx.engine.startContainer(containerId, name).catch(() => ctx.engine.startContainer(containerId).catch(() => undefined));
  await ctx.engine.deleteCheckpoint(containerId, name).catch(() => undefined);
}

async function settleInterrupted(ctx: Context, snapshot: Snapshot): Promise<void> {
  if (snapshot.kind === "memory") {
    await restartCheckpointedSource(ctx, snapshot);
    await ctx.engine.removeImage(`${snapshotRepo(ctx)}:${snapshot.id}`, false).catch(() => undefined);
    markFailed(ctx, snapshot, { code: "interrupted", message: "the server stopped during the checkpoint" });
    return;
  }
  const images = await ctx.engine.listImages({ [labelKeys.snapshot]: snapshot.id, [labelKeys.server]: ctx.serverId });
  const image = images[0];
  if (image && snapshot.kind === "container") {
    try {
      await finishContainerSnapshot(ctx, snapshot, image.id);
      ctx.config.log({ event: "snapshot_recovered", snapshotId: snapshot.id });
      return;
    } catch (error) {
      await ctx.engine.removeImage(image.id, true).catch(() => undefined);
      markFailed(ctx, snapshot, { code: "interrupted", message: `the server stopped while capturing; finishing failed: ${(error as Error).message}` });
      return;
    }
  }
  markFailed(ctx, snapshot, { code: "interrupted", message: "the server stopped before the capture finished" });
}
