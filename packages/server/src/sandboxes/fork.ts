// Forking a running gVisor sandbox: a memory snapshot, then count sandboxes
// started from it, each continuing the processes independently.
import { StrataError, type ForkReply } from "@strata/contract";
import type { Context } from "../context.js";
import { createSnapshot } from "../snapshots/create.js";
import { getSnapshot } from "../snapshots/read.js";
import { createSandbox } from "./create.js";

export async function forkSandbox(ctx: Context, idOrName: string, count: number): Promise<ForkReply> {
  const created = await createSnapshot(ctx, idOrName, { kind: "memory" });
  let snapshot = created;
  while (snapshot.status === "creating") snapshot = await getSnapshot(ctx, created.id, 30);
  if (snapshot.status !== "ready") {
    throw new StrataError("interrupted", `the memory snapshot failed: ${snapshot.error?.message ?? snapshot.status}`);
  }
  const sandboxes = [];
  for (let i = 0; i < count; i++) sandboxes.push(await createSandbox(ctx, { memorySnapshotId: snapshot.id }));
  return { snapshotId: snapshot.id, sandboxes };
}
