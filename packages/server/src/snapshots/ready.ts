// The one way a snapshot turns ready: its manifest is written durably first,
// then its record; the index caches it and waiters are woken.
import type { Snapshot } from "@strata/contract";
import type { Context } from "../context.js";
import type { ManifestV1 } from "./manifest.js";
import { readyRecord } from "./store.js";

/** `bytes`, when given, are the manifest exactly as received (an import); otherwise it is serialised canonically. */
export function markReady(ctx: Context, manifest: ManifestV1, state: Partial<Snapshot>, bytes?: Buffer): Snapshot {
  const digest = bytes ? ctx.snapshots.writeManifestBytes(manifest.id, bytes) : ctx.snapshots.writeManifest(manifest);
  const ready = readyRecord(manifest, digest, { readyAt: new Date().toISOString(), ...state });
  ctx.snapshots.writeRecord(ready);
  ctx.index.putSnapshot(ready);
  ctx.jobs.changed(manifest.id);
  return ready;
}
