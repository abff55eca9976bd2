// Garbage collection: remove engine images, blobs and temp files that no
// snapshot record owns. What a record owns is never touched; images still used by a
// sandbox are left for a later run.
import type { GcReport } from "@strata/contract";
import { labelKeys, snapshotRepo, type Context } from "../context.js";

export async function collectGarbage(ctx: Context): Promise<GcReport> {
  const report: GcReport = { removedImages: [], removedBlobs: [], removedTempFiles: 0, freedBytes: 0 };
  const owned = new Set(ctx.index.allSnapshotIds());
  for (const snapshot of ctx.snapshots.scan().snapshots) owned.add(snapshot.id);
  const images = await ctx.engine.listImages({ [labelKeys.server]: ctx.serverId, [labelKeys.snapshot]: "" });
  for (const image of images) {
    const snapshotId = image.labels[labelKeys.snapshot];
    if (snapshotId && owned.has(snapshotId)) continue;
    // Tagged by another server (an import of the same image): theirs to keep.
    const mine = `${snapshotRepo(ctx)}:`;
    if (image.tags.some((tag) => !tag.startsWith(mine))) continue;
    // Refs first (untag), then the image itself unless something still uses it.
    for (const tag of image.tags) await ctx.engine.removeImage(tag, false).catch(() => false);
    const removed = await ctx.engine.removeImage(image.id, false).catch(() => false);
    if (removed) {
      report.removedImages.push({ id: image.id, ...(snapshotId ? { snapshotId } : {}), sizeBytes: image.sizeBytes });
      report.freedBytes += image.sizeBytes;
    }
  }
  const referenced = ctx.index.referencedBlobs();
  for (const snapshot of ctx.snapshots.scan().snapshots) if (snapshot.contentDigest) referenced.add(snapshot.contentDigest);
  for (const blob of ctx.blobs.list()) {
    if (referenced.has(blob.digest) || ctx.blobs.isPinned(blob.digest)) continue;
    ctx.blobs.remove(blob.digest);
    report.removedBlobs.push({ digest: blob.digest, sizeBytes: blob.storedBytes });
    report.freedBytes += blob.storedBytes;
  }
  report.removedTempFiles = ctx.snapshots.cleanTemp() + ctx.blobs.cleanTemp();
  ctx.config.log({ event: "gc", images: report.removedImages.length, freedBytes: report.freedBytes });
  return report;
}
