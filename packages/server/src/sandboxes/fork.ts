// Forking a running gVisor sandbox: a memory snapshot, then count sandboxes
// started from it, each continuing the processes independently. The snapshot
// stays (its id is in the reply) until deleted. A fork that fails part way
// leaves nothing: the forks made so far and the snapshot are removed, and the
// error is the snapshot's or the restore's own.
import { isErrorCode, StrataError, type ForkReply, type Sandbox } from "@strata/contract";
import type { Context } from "../context.js";
import { createSnapshot } from "../snapshots/create.js";
import { deleteSnapshot } from "../snapshots/delete.js";
import { getSnapshot } from "../snapshots/read.js";
import { createSandbox } from "./create.js";
import { deleteSandbox } from "./lifecycle.js";

/**
 * Takes a memory snapshot of a running gVisor sandbox and starts `count`
 * sandboxes from it; the source carries on where it was. Resolves to the
 * snapshot's id and the forks. Throws what the snapshot or a restore threw:
 * `memory_snapshot_requires_gvisor`, `sandbox_not_running`, `sandbox_busy`,
 * `checkpoint_restore_failed`, engine errors.
 */
export async function forkSandbox(ctx: Context, idOrName: string, count: number): Promise<ForkReply> {
  const created = await createSnapshot(ctx, idOrName, { kind: "memory" });
  let snapshot = created;
  while (snapshot.status === "creating") snapshot = await getSnapshot(ctx, created.id, 30);
  if (snapshot.status !== "ready") {
    const code = snapshot.error && isErrorCode(snapshot.error.code) ? snapshot.error.code : "internal";
    throw new StrataError(code, `the memory snapshot ${snapshot.id} failed: ${snapshot.error?.message ?? snapshot.status}`);
  }
  const sandboxes: Sandbox[] = [];
  try {
    for (let i = 0; i < count; i++) sandboxes.push(await createSandbox(ctx, { memorySnapshotId: snapshot.id }));
  } catch (error) {
    for (const fork of sandboxes) await deleteSandbox(ctx, fork.id).catch(() => undefined);
    await deleteSnapshot(ctx, snapshot.id, true).catch(() => undefined);
    throw error;
  }
  return { snapshotId: snapshot.id, sandboxes };
}
