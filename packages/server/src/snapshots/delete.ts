// Deleting a snapshot: refuse while it has children or is creating (unless
// forced), mark it deleting so a crash finishes the job, untag its image
// (the engine keeps it while something uses it; gc removes it later), drop
// the reference of an image pulled from a registry for it (the engine frees
// the image when nothing else refers to it or uses it), then remove its
// directory and its index row.
import { StrataError, type Snapshot } from "@strata/contract";
import { snapshotRepo, type Context } from "../context.js";
import { engineError } from "../engine/errors.js";
import { findSnapshot } from "./find.js";

export async function deleteSnapshot(ctx: Context, ref: string, force = false): Promise<void> {
  const snapshot = findSnapshot(ctx, ref);
  if (snapshot.status === "creating" && !force) {
    throw new StrataError("snapshot_creating", `snapshot '${ref}' is still being created; wait, or delete with force=true`);
  }
  const children = ctx.index.snapshotChildren(snapshot.id);
  if (children.length && !force) {
    throw new StrataError("snapshot_has_children", `snapshot '${ref}' has ${children.length} child snapshot(s) (${children.join(", ")}); delete them first or use force=true`);
  }
  await ctx.jobs.abort(snapshot.id);
  const deleting: Snapshot = { ...findSnapshot(ctx, snapshot.id), status: "deleting" };
  ctx.snapshots.writeRecord(deleting);
  ctx.index.putSnapshot(deleting);
  await removeSnapshotArtifacts(ctx, deleting);
}

/** Removes what a snapshot owns; safe to repeat (startup finishes interrupted deletes). */
export async function removeSnapshotArtifacts(ctx: Context, snapshot: Snapshot): Promise<void> {
  if (snapshot.kind === "container" || snapshot.kind === "memory") {
    const tag = `${snapshotRepo(ctx)}:${snapshot.id}`;
    try {
      // In use: untag only; the image stays for its users and gc takes it after.
      if (!(await ctx.engine.removeImage(tag, false))) await ctx.engine.removeImage(tag, true);
      // Pulled from a registry for this snapshot: the pull's reference goes too once no tag (this
      // server's or another's on the same engine) and no other record of ours holds the image.
      const pulledAs = snapshot.origin?.imageUri;
      if (pulledAs && snapshot.imageId && !ctx.index.snapshotsUsingImage(snapshot.imageId).some((id) => id !== snapshot.id)) {
        const image = await ctx.engine.inspectImage(snapshot.imageId);
        if (image && !image.repoTags.length) await ctx.engine.removeImage(pulledAs, false);
      }
    } catch (error) {
      throw engineError(error, "remove snapshot image");
    }
  }
  ctx.snapshots.remove(snapshot.id);
  ctx.index.deleteSnapshot(snapshot.id);
  // The blob goes with its last snapshot: identical content is stored once.
  if (snapshot.contentDigest && ctx.index.snapshotsUsingBlob(snapshot.contentDigest).length === 0) {
    ctx.blobs.remove(snapshot.contentDigest);
  }
  ctx.jobs.changed(snapshot.id);
}
