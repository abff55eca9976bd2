// Looking up a snapshot by id, name or digest.
import { StrataError, type Snapshot } from "@strata/contract";
import type { Context } from "../context.js";

export function findSnapshot(ctx: Context, ref: string): Snapshot {
  const snapshot = ctx.index.findSnapshot(ref);
  if (!snapshot) throw new StrataError("snapshot_not_found", `no snapshot '${ref}'`);
  return snapshot;
}

/** A snapshot that can be restored now; 404 or 409 otherwise. */
export function readySnapshot(ctx: Context, ref: string): Snapshot {
  const snapshot = findSnapshot(ctx, ref);
  if (snapshot.status !== "ready") {
    throw new StrataError("snapshot_not_ready", `snapshot '${ref}' is ${snapshot.status}${snapshot.error ? `: ${snapshot.error.message}` : ""}`);
  }
  return snapshot;
}
