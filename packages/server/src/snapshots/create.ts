// Creating a snapshot: check the request, record it as creating, then capture
// in the background (a container: commit, paused while read; a directory: see
// capture-directory.ts; memory: capture-memory.ts), write the manifest and
// turn ready; on failure remove what was made and record why. While a memory
// capture runs, its sandbox takes no other snapshot (its container is
// swapped underneath).
import { randomUUID } from "node:crypto";
import { posix } from "node:path";
import { StrataError, type CreateSnapshotRequest, type Snapshot } from "@strata/contract";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import { PathFailure } from "../engine/engine.js";
import { engineError, engineRefused } from "../engine/errors.js";
import { findSandbox } from "../sandboxes/lifecycle.js";
import { pathError } from "../sandboxes/sandbox-path.js";
import { captureDirectory, checkDirectory, probeSandboxView } from "./capture-directory.js";
import { pushSnapshot } from "./push.js";
import { captureMemory, refuseRunningExecs } from "./capture-memory.js";
import { canonicalJson, type ManifestV1 } from "./manifest.js";
import { markReady } from "./ready.js";

export async function createSnapshot(ctx: Context, sandboxRef: string, request: CreateSnapshotRequest): Promise<Snapshot> {
  const row = findSandbox(ctx, sandboxRef);
  if (row.phase === "creating" || !row.containerId) {
    throw new StrataError("sandbox_not_running", `sandbox '${sandboxRef}' is still being created`);
  }
  const containerId = row.containerId;
  const kind = request.kind ?? "container";
  if (kind !== "directory" && (request.path !== undefined || request.exclude !== undefined)) {
    throw new StrataError("bad_request", "body/path and body/exclude are for kind directory");
  }
  if (kind === "memory") {
    if (row.isolation !== "gvisor") {
      throw new StrataError("memory_snapshot_requires_gvisor", `sandbox '${sandboxRef}' runs under runc; memory snapshots need isolation gvisor`);
    }
    const container = await ctx.engine.inspectContainer(containerId).catch((error) => {
      throw engineError(error, "inspect sandbox");
    });
    if (container?.state !== "running") {
      throw new StrataError("sandbox_not_running", `sandbox '${sandboxRef}' is not running; a memory snapshot needs running processes`);
    }
    await refuseRunningExecs(ctx, containerId, sandboxRef).catch((error) => {
      throw engineError(error, "inspect sandbox");
    });
  }
  if (kind === "directory") {
    if (!request.path) throw new StrataError("bad_request", "body/path is required for kind directory");
    await checkDirectory(ctx, containerId, request.path).catch((error) => {
      throw engineError(error, "stat path");
    });
  }
  if (request.name && ctx.index.snapshotNameOwner(request.name)) {
    throw new StrataError("snapshot_name_taken", `a snapshot named '${request.name}' already exists`);
  }
  // A checkpoint swaps the sandbox's container and cannot be taken of a
  // container paused for a commit: while one runs, nothing else is captured,
  // and it waits for captures already running. Checked with no await before
  // the insert below, so two requests cannot both pass.
  const capturing = ctx.index.listSnapshots({ ...(kind === "memory" ? {} : { kind: "memory" }), status: "creating", sandboxId: row.id, limit: 1 })[0];
  if (capturing) {
    throw new StrataError(
      "sandbox_busy",
      `sandbox '${sandboxRef}' is being captured (${capturing.kind} snapshot ${capturing.id}); take this snapshot once that one is ready or failed`,
    );
  }

  const record: Snapshot = {
    id: randomUUID(),
    kind,
    ...(request.name ? { name: request.name } : {}),
    status: "creating",
    sandboxId: row.id,
    ...(row.snapshotId ? { parent: row.snapshotId } : {}),
    ...(row.snapshotDigest ? { parentDigest: row.snapshotDigest } : {}),
    labels: request.labels ?? {},
    baseImage: { ref: row.baseRef, digest: row.baseDigest },
    ...(kind !== "directory" ? { settings: { isolation: row.isolation, network: row.network, resources: row.resources } } : {}),
    ...(kind === "directory" ? { path: posix.normalize(request.path!) } : {}),
    ...(request.exclude?.length ? { exclude: request.exclude } : {}),
    createdAt: new Date().toISOString(),
  };
  try {
    ctx.index.insertSnapshot(record);
  } catch (error) {
    if ((error as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
      throw new StrataError("snapshot_name_taken", `a snapshot named '${request.name}' already exists`);
    }
    throw error;
  }
  try {
    ctx.snapshots.writeRecord(record);
  } catch (error) {
    ctx.index.deleteSnapshot(record.id);
    throw error;
  }
  ctx.jobs.run(record.id, async (signal) => {
    await (kind === "directory"
      ? captureDirectoryJob(ctx, record, containerId, signal)
      : kind === "memory"
        ? captureMemoryJob(ctx, record, containerId, signal)
        : captureContainer(ctx, record, containerId, signal, row.isolation === "gvisor"));
    if (ctx.config.autoPush && ctx.registry && !signal.aborted && ctx.index.findSnapshot(record.id)?.status === "ready") {
      await pushSnapshot(ctx, record.id, { signal }).catch((error) =>
        ctx.config.log({ event: "auto_push_failed", snapshotId: record.id, message: (error as Error).message }),
      );
    }
  });
  return record;
}

async function captureContainer(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal, gvisor: boolean): Promise<void> {
  let imageId: string | undefined;
  try {
    // a gVisor sandbox keeps its fifos to itself: the commit would miss them
    if (gvisor) await probeSandboxView(ctx, containerId, "/", signal, { fifosOnly: true });
    // The commit is never cut short: an engine left committing would make an
    // image no record owns. An abort is honoured once it returns.
    imageId = await ctx.engine.commit(containerId, {
      repo: snapshotRepo(ctx),
      tag: record.id,
      labels: snapshotImageLabels(ctx, record),
      pause: true,
    });
    if (signal.aborted) throw new StrataError("internal", "snapshot deleted while creating");
    await finishContainerSnapshot(ctx, record, imageId);
  } catch (error) {
    if (imageId) await ctx.engine.removeImage(imageId, true).catch(() => undefined);
    if (signal.aborted) return; // deleted with force: the deleter removes the record
    const gone = engineRefused(error, 404);
    markFailed(ctx, record, gone ? new StrataError("sandbox_not_running", "the sandbox's container is gone") : engineError(error, "commit"));
  }
}

async function captureMemoryJob(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal): Promise<void> {
  try {
    await captureMemory(ctx, record, containerId, signal);
  } catch (error) {
    if (signal.aborted) return;
    markFailed(ctx, record, engineError(error, "checkpoint"));
  }
}

async function captureDirectoryJob(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal): Promise<void> {
  try {
    await captureDirectory(ctx, record, containerId, signal);
  } catch (error) {
    if (signal.aborted) return;
    // the sandbox changed the path under the host-side read (a component swapped or removed mid-walk)
    const vanished = (error as NodeJS.ErrnoException).code === "ENOENT" && (error as NodeJS.ErrnoException).syscall !== "connect";
    const gone = engineRefused(error, 404) || (error instanceof PathFailure && error.reason === "changed") || vanished;
    const failure = gone ? new StrataError("path_not_found", `'${record.path}' is gone from the sandbox`) : pathError(error, record.path!);
    markFailed(ctx, record, failure ?? engineError(error, "capture directory"));
  }
}

/**
 * Labels of a snapshot's committed image: its server and id, and its source's
 * settings (canonical JSON), which travel with the image through a registry.
 */
export function snapshotImageLabels(ctx: Context, record: Snapshot): Record<string, string> {
  return {
    [labelKeys.server]: ctx.serverId,
    [labelKeys.snapshot]: record.id,
    ...(record.settings ? { [labelKeys.settings]: canonicalJson(record.settings) } : {}),
  };
}

/** Writes the manifest of a committed image and turns the snapshot ready. */
export async function finishContainerSnapshot(ctx: Context, record: Snapshot, imageId: string): Promise<Snapshot> {
  const [image, sizeBytes] = await Promise.all([ctx.engine.inspectImage(imageId), ctx.engine.topLayerSize(imageId)]);
  if (!image) throw new StrataError("internal", `the committed image ${imageId} vanished`);
  const manifest: ManifestV1 = {
    schemaVersion: 1,
    id: record.id,
    kind: "container",
    sandboxId: record.sandboxId,
    parent: record.parent ? { id: record.parent, digest: record.parentDigest ?? null } : null,
    baseImage: record.baseImage,
    labels: record.labels,
    ...(record.settings ? { settings: record.settings } : {}),
    content: { imageId, sizeBytes, imageSizeBytes: image.sizeBytes, layers: image.layers },
    createdAt: record.createdAt,
  };
  return markReady(ctx, manifest, { name: record.name });
}

export function markFailed(ctx: Context, record: Snapshot, error: StrataError | { code: string; message: string }): void {
  const failed: Snapshot = { ...record, status: "failed", error: { code: error.code, message: error.message } };
  ctx.snapshots.writeRecord(failed);
  ctx.index.putSnapshot(failed);
  ctx.jobs.changed(record.id);
  ctx.config.log({ event: "snapshot_failed", snapshotId: record.id, code: error.code, message: error.message });
}
