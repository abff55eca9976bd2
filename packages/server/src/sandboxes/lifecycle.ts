// Reading and driving existing sandboxes: get, list, stop, start, delete.
import { StrataError, type ListSandboxesQuery, type Sandbox } from "@strata/contract";
import { labelKeys, type Context } from "../context.js";
import type { ContainerInfo } from "../engine/engine.js";
import { engineError } from "../engine/errors.js";
import type { SandboxRow } from "../index/database.js";
import { keepTmpOnRootfs } from "./gvisor-tmp.js";
import { statusOf, toSandbox } from "./view.js";

/** The row of a sandbox by id or name, or sandbox_not_found. */
export function findSandbox(ctx: Context, idOrName: string): SandboxRow {
  const row = ctx.index.findSandbox(idOrName);
  if (!row) throw new StrataError("sandbox_not_found", `no sandbox '${idOrName}'`);
  return row;
}

async function containerOf(ctx: Context, row: SandboxRow): Promise<ContainerInfo | null> {
  if (!row.containerId) return null;
  return ctx.engine.inspectContainer(row.containerId).catch((error) => {
    throw engineError(error, "inspect sandbox");
  });
}

export async function getSandbox(ctx: Context, idOrName: string): Promise<Sandbox> {
  const row = findSandbox(ctx, idOrName);
  return toSandbox(row, await containerOf(ctx, row));
}

/** A sandbox that must be running for what follows (exec, files); 409 otherwise. */
export async function runningSandbox(ctx: Context, idOrName: string): Promise<{ row: SandboxRow; containerId: string }> {
  const row = findSandbox(ctx, idOrName);
  const container = await containerOf(ctx, row);
  const status = statusOf(row, container);
  if (status !== "running" || !container) {
    throw new StrataError("sandbox_not_running", `sandbox '${idOrName}' is ${status}, not running`);
  }
  return { row, containerId: container.id };
}

export async function listSandboxes(ctx: Context, query: ListSandboxesQuery): Promise<Sandbox[]> {
  const containers = await ctx.engine.listContainers({ [labelKeys.server]: ctx.serverId }).catch((error) => {
    throw engineError(error, "list sandboxes");
  });
  const byId = new Map(containers.map((container) => [container.id, container]));
  const wanted = (query.label ?? []).map((pair) => {
    const at = pair.indexOf("=");
    return [pair.slice(0, at), pair.slice(at + 1)] as const;
  });
  return ctx.index
    .listSandboxes()
    .map((row) => toSandbox(row, row.containerId ? (byId.get(row.containerId) ?? null) : null))
    .filter((sandbox) => !query.status || sandbox.status === query.status)
    .filter((sandbox) => wanted.every(([key, value]) => sandbox.labels[key] === value));
}

export async function stopSandbox(ctx: Context, idOrName: string, graceSeconds = 10): Promise<Sandbox> {
  const row = findSandbox(ctx, idOrName);
  const container = await containerOf(ctx, row);
  if (!container) throw new StrataError("sandbox_not_running", `sandbox '${idOrName}' has no container`);
  if (container.state === "running" || container.state === "paused" || container.state === "restarting") {
    await ctx.engine.stopContainer(container.id, graceSeconds).catch((error) => {
      throw engineError(error, "stop sandbox");
    });
  }
  return toSandbox(row, await containerOf(ctx, row));
}

export async function startSandbox(ctx: Context, idOrName: string): Promise<Sandbox> {
  const row = findSandbox(ctx, idOrName);
  const container = await containerOf(ctx, row);
  if (!container) throw new StrataError("sandbox_not_running", `sandbox '${idOrName}' has no container to start`);
  if (container.state !== "running") {
    const start = async () => {
      // the sandbox may have emptied its /tmp since: gVisor would then put a tmpfs over it again
      if (row.isolation === "gvisor" && container.state !== "paused") await keepTmpOnRootfs(ctx, container.id);
      await ctx.engine.startContainer(container.id);
    };
    await start().catch((error) => {
      throw engineError(error, "start sandbox");
    });
  }
  return toSandbox(row, await containerOf(ctx, row));
}

/** Removes the container, then the record; safe to repeat after a crash. */
export async function deleteSandbox(ctx: Context, idOrName: string): Promise<void> {
  const row = findSandbox(ctx, idOrName);
  await removeSandbox(ctx, row);
}

export async function removeSandbox(ctx: Context, row: SandboxRow): Promise<void> {
  const containers = await ctx.engine.listContainers({ [labelKeys.sandbox]: row.id }).catch((error) => {
    throw engineError(error, "delete sandbox");
  });
  const ids = new Set(containers.map((container) => container.id));
  if (row.containerId) ids.add(row.containerId);
  for (const id of ids) {
    await ctx.engine.removeContainer(id).catch((error) => {
      throw engineError(error, "delete sandbox");
    });
  }
  ctx.index.deleteSandbox(row.id);
}
