// Startup recovery of snapshots: clear temp files and the empty directories
// a crash leaves before a snapshot's first record is in, rebuild the index
// from the store, resolve captures a crash interrupted (finished when the
// engine has the image, failed otherwise) and finish interrupted deletes.
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Snapshot } from "@strata/contract";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import { finishContainerSnapshot, markFailed, snapshotImageLabels } from "./create.js";
import { removeSnapshotArtifacts } from "./delete.js";
import { briefly, resumeSource } from "./capture-memory.js";
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

/**
 * A memory capture cut off after its checkpoint leaves the source stopped:
 * adopt the container it was being resumed in when that one runs, else resume
 * it from the checkpoint in a new container (committing its filesystem first
 * when the crash came before the commit). Never starts its processes afresh;
 * returns what became of the source, for the snapshot's error.
 */
async function restartCheckpointedSource(ctx: Context, snapshot: Snapshot): Promise<string> {
  const containerId = ctx.index.findSandbox(snapshot.sandboxId)?.containerId;
  if (!containerId) return "";
  const container = await ctx.engine.inspectContainer(containerId).catch(() => null);
  if (!container || container.state === "running") return "";
  const name = `strata-${snapshot.id}`;
  const others = await ctx.engine.listContainers({ [labelKeys.server]: ctx.serverId, [labelKeys.sandbox]: snapshot.sandboxId }).catch(() => []);
  const resumed = others.find((c) => c.id !== containerId && c.state === "running");
  if (resumed) {
    ctx.index.setSandboxContainer(snapshot.sandboxId, resumed.id);
    await ctx.engine.removeContainer(containerId).catch(() => undefined);
    return "; the sandbox had resumed and carries on";
  }
  for (const other of others) if (other.id !== containerId) await ctx.engine.removeContainer(other.id).catch(() => undefined);
  try {
    const image = (await ctx.engine.listImages({ [labelKeys.snapshot]: snapshot.id, [labelKeys.server]: ctx.serverId }))[0];
    const imageId = image?.id ?? await ctx.engine.commit(containerId, {
      repo: snapshotRepo(ctx), tag: snapshot.id, pause: false, labels: snapshotImageLabels(ctx, snapshot),
    });
    await resumeSource(ctx, snapshot, containerId, imageId, name);
    return "; the sandbox was resumed from the checkpoint";
  } catch (error) {
    return `; the sandbox could not be resumed from the checkpoint and is stopped: ${briefly(error)}`;
  } finally {
    await ctx.engine.deleteCheckpoint(containerId, name).catch(() => undefined);
  }
}

async function settleInterrupted(ctx: Context, snapshot: Snapshot): Promise<void> {
  if (snapshot.kind === "memory") {
    const source = await restartCheckpointedSource(ctx, snapshot);
    await ctx.engine.removeImage(`${snapshotRepo(ctx)}:${snapshot.id}`, false).catch(() => undefined);
    markFailed(ctx, snapshot, { code: "interrupted", message: `the server stopped during the checkpoint${source}` });
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
