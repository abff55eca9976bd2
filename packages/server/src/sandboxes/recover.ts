// Startup reconciliation between the index and the engine: undo creations a
// crash interrupted, and adopt containers whose record the index lacks (the
// record travels in a container label).
import { labelKeys, type Context } from "../context.js";
import type { SandboxRow } from "../index/database.js";

export async function recoverSandboxes(ctx: Context): Promise<void> {
  const containers = await ctx.engine.listContainers({ [labelKeys.server]: ctx.serverId });
  // a crash while directories were being restored leaves a created container's files mounted here
  for (const container of containers) {
    if (container.state === "created") await ctx.engine.unmountRootfs(container.id).catch(() => undefined);
  }
  const rows = ctx.index.listSandboxes();
  const known = new Set<string>();
  for (const row of rows) {
    if (row.phase !== "creating") {
      known.add(row.id);
      continue;
    }
    // The request that was creating it never got an answer: undo it.
    for (const container of containers) {
      if (container.labels[labelKeys.sandbox] === row.id) await ctx.engine.removeContainer(container.id);
    }
    ctx.index.deleteSandbox(row.id);
    ctx.config.log({ event: "sandbox_creation_undone", sandboxId: row.id });
  }
  for (const container of containers) {
    const sandboxId = container.labels[labelKeys.sandbox];
    if (sandboxId && known.has(sandboxId)) {
      // a server killed mid-exec left its commands running, with nobody to read them or time them out
      if (container.state === "running") {
        const ended = await ctx.engine.endStrayExecs(container.id).catch(() => 0);
        if (ended) ctx.config.log({ event: "stray_execs_ended", sandboxId, count: ended });
      }
      continue;
    }
    if (rows.some((row) => row.id === sandboxId)) continue; // undone above
    // Only a new index adopts: with an index that survived, a container
    // without a row is a create that was undone.
    const record = ctx.index.fresh ? parseRecord(container.labels[labelKeys.record]) : null;
    if (record && record.id === sandboxId) {
      ctx.index.insertSandbox({ ...record, containerId: container.id, phase: "created" });
      ctx.config.log({ event: "sandbox_adopted", sandboxId });
    } else {
      await ctx.engine.removeContainer(container.id);
      ctx.config.log({ event: "orphan_container_removed", containerId: container.id });
    }
  }
}

function parseRecord(label: string | undefined): SandboxRow | null {
  if (!label) return null;
  try {
    const record = JSON.parse(label) as SandboxRow;
    return typeof record.id === "string" && typeof record.image === "string" ? record : null;
  } catch {
    return null;
  }
}

/**
 * Removes containers of this server that no row owns. A create writes its row
 * before asking the engine, so such a container can only be one whose create
 * was undone while the engine was still making it.
 */
export async function removeOrphanContainers(ctx: Context): Promise<void> {
  const containers = await ctx.engine.listContainers({ [labelKeys.server]: ctx.serverId });
  for (const container of containers) {
    const sandboxId = container.labels[labelKeys.sandbox];
    if (sandboxId && ctx.index.findSandbox(sandboxId)) continue;
    await ctx.engine.removeContainer(container.id);
    ctx.config.log({ event: "orphan_container_removed", containerId: container.id });
  }
}
