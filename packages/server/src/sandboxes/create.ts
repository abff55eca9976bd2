// Creating a sandbox: check the request against what exists, make the
// container, start it; on any failure remove what was made. A sandbox made
// from a snapshot keeps its source's isolation, network and limits unless the
// request sets them, and never runs below the server's minimum isolation.
import { randomUUID } from "node:crypto";
import { resourceProblem, StrataError, type CreateSandboxRequest, type Sandbox, type SandboxSettings, type Snapshot } from "@strata/contract";
import { labelKeys, type Context } from "../context.js";
import { engineError } from "../engine/errors.js";
import type { ImageInfo } from "../engine/engine.js";
import type { SandboxRow } from "../index/database.js";
import { readySnapshot } from "../snapshots/find.js";
import { snapshotFromImageUri } from "../snapshots/pull.js";
import { startFromCheckpoint } from "../snapshots/capture-memory.js";
import { keepTmpOnRootfs } from "./gvisor-tmp.js";
import { applyDirectoryRestores, planDirectoryRestores } from "./restore-directories.js";
import { toSandbox } from "./view.js";

interface Source {
  /** The reference recorded as the sandbox's image. */
  ref: string;
  image: ImageInfo;
  snapshot?: Snapshot;
}

/** What the sandbox starts from: an image, or a ready snapshot's image, looked up here and never taken from the request. */
async function resolveSource(ctx: Context, request: CreateSandboxRequest): Promise<Source> {
  const given = [request.image, request.snapshotId, request.imageUri, request.memorySnapshotId].filter((v) => v !== undefined).length;
  if (given > 1) throw new StrataError("bad_request", "give one of body/image, body/snapshotId, body/imageUri and body/memorySnapshotId");
  const inspect = (ref: string) =>
    ctx.engine.inspectImage(ref).catch((error) => {
      throw engineError(error, "inspect image");
    });
  if (request.memorySnapshotId) {
    const snapshot = readySnapshot(ctx, request.memorySnapshotId);
    if (snapshot.kind !== "memory" || !snapshot.imageId || !snapshot.contentDigest) {
      throw new StrataError("bad_request", `snapshot '${request.memorySnapshotId}' is a ${snapshot.kind} snapshot, not a memory snapshot`);
    }
    for (const field of ["cmd", "env", "directorySnapshots"] as const) {
      if (request[field] !== undefined) throw new StrataError("bad_request", `body/${field} cannot change a sandbox restored from memory: its processes are already running`);
    }
    if (request.isolation === "runc") throw new StrataError("memory_snapshot_requires_gvisor", "a memory snapshot restores only under gvisor");
    const image = await inspect(snapshot.imageId);
    if (!image) throw new StrataError("image_not_found", `the image ${snapshot.imageId} of snapshot '${request.memorySnapshotId}' is missing from the engine`);
    if (!ctx.blobs.has(snapshot.contentDigest)) throw new StrataError("blob_corrupt", `the checkpoint of snapshot '${request.memorySnapshotId}' is missing`);
    return { ref: snapshot.imageUri ?? snapshot.imageId, image, snapshot };
  }
  if (request.snapshotId || request.imageUri) {
    const snapshot = request.imageUri ? await snapshotFromImageUri(ctx, request.imageUri) : readySnapshot(ctx, request.snapshotId!);
    if ((snapshot.kind !== "container" && snapshot.kind !== "memory") || !snapshot.imageId) {
      throw new StrataError("bad_request", `snapshot '${request.snapshotId ?? request.imageUri}' is a ${snapshot.kind} snapshot, not a container snapshot`);
    }
    const image = await inspect(snapshot.imageId);
    if (!image) throw new StrataError("image_not_found", `the image ${snapshot.imageId} of snapshot '${request.snapshotId}' is missing from the engine`);
    return { ref: snapshot.imageUri ?? snapshot.imageId, image, snapshot };
  }
  if (!request.image) throw new StrataError("bad_request", "body/image, body/snapshotId or body/imageUri is required");
  const image = await inspect(request.image);
  if (!image) {
    throw new StrataError("image_not_found", `image '${request.image}' is not in the engine (Strata never pulls images by tag)`);
  }
  return { ref: request.image, image };
}

/**
 * Isolation, network and resources of the new sandbox: each as the request
 * sets it, else as the snapshot recorded of its source sandbox (restores,
 * forks, imports and registry restores alike), else the defaults (runc,
 * network on, no limits). Resource limits merge field by field, so a request
 * that sets one keeps the others the snapshot recorded. Isolation is never
 * below the server's minimum: an unset or inherited weaker one is raised to
 * it, a request naming a weaker one is refused (`isolation_below_minimum`).
 * An inherited process limit is dropped under gvisor (see `resourceProblem`).
 */
export function resolveSettings(ctx: Context, request: CreateSandboxRequest, snapshot: Snapshot | undefined): SandboxSettings {
  const floor = ctx.config.minIsolation;
  if (floor === "gvisor" && request.isolation === "runc") {
    throw new StrataError("isolation_below_minimum", "this server runs every sandbox under gvisor at least; body/isolation runc is refused");
  }
  const inherited = snapshot?.settings;
  const asked = snapshot?.kind === "memory" ? "gvisor" : (request.isolation ?? inherited?.isolation ?? "runc");
  const isolation = floor === "gvisor" ? "gvisor" : asked;
  const resources = { ...inherited?.resources, ...request.resources };
  // a process limit inherited from a runc source does not follow it under gvisor, which takes none
  if (isolation === "gvisor" && request.resources?.pids === undefined) delete resources.pids;
  return { isolation, network: request.network ?? inherited?.network ?? true, resources };
}

export async function createSandbox(ctx: Context, request: CreateSandboxRequest): Promise<Sandbox> {
  const source = await resolveSource(ctx, request);
  const settings = resolveSettings(ctx, request, source.snapshot);
  const directories = await planDirectoryRestores(ctx, request.directorySnapshots);
  if (request.name && ctx.index.sandboxNameTaken(request.name)) {
    throw new StrataError("sandbox_name_taken", `a sandbox named '${request.name}' already exists`);
  }
  const image = source.image;

  const now = new Date();
  const row: SandboxRow = {
    id: randomUUID(),
    name: request.name ?? null,
    containerId: null,
    image: source.ref,
    imageId: image.id,
    snapshotId: source.snapshot?.id ?? null,
    snapshotDigest: source.snapshot?.digest ?? null,
    baseRef: source.snapshot?.baseImage.ref ?? source.ref,
    baseDigest: source.snapshot?.baseImage.digest ?? image.id,
    directorySnapshots: directories.map((d) => ({ snapshotId: d.snapshot.id, path: d.path })),
    isolation: settings.isolation,
    cmd: request.cmd ?? null,
    labels: request.labels ?? {},
    resources: settings.resources,
    network: settings.network,
    phase: "creating",
    createdAt: now.toISOString(),
    expiresAt: request.timeoutSeconds ? new Date(now.getTime() + request.timeoutSeconds * 1000).toISOString() : null,
  };
  const tooSmall = resourceProblem(row.resources, row.isolation, "body/resources");
  if (tooSmall) throw new StrataError("bad_request", tooSmall.message, { details: { field: tooSmall.field } });
  try {
    ctx.index.insertSandbox(row);
  } catch (error) {
    if ((error as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
      throw new StrataError("sandbox_name_taken", `a sandbox named '${request.name}' already exists`);
    }
    throw error;
  }

  let containerId: string | null = null;
  try {
    containerId = await ctx.engine.createContainer({
      name: `strata-${row.id}`,
      image: image.id,
      cmd: request.cmd,
      env: Object.entries(request.env ?? {}).map(([key, value]) => `${key}=${value}`),
      labels: { [labelKeys.server]: ctx.serverId, [labelKeys.sandbox]: row.id, [labelKeys.record]: JSON.stringify({ ...row, phase: "created" }) },
      runtime: row.isolation === "gvisor" ? "runsc" : undefined,
      cpus: row.resources.cpus,
      memoryMb: row.resources.memoryMb,
      pids: row.resources.pids,
      network: row.network,
      init: true,
    });
    ctx.index.setSandboxContainer(row.id, containerId);
    await applyDirectoryRestores(ctx, containerId, directories);
    if (source.snapshot?.kind === "memory") await startFromCheckpoint(ctx, containerId, source.snapshot);
    else {
      if (row.isolation === "gvisor") await keepTmpOnRootfs(ctx, containerId);
      await ctx.engine.startContainer(containerId);
    }
    ctx.index.markSandboxCreated(row.id, containerId);
  } catch (error) {
    if (containerId) await ctx.engine.removeContainer(containerId).catch(() => undefined);
    ctx.index.deleteSandbox(row.id);
    throw engineError(error, "create sandbox");
  }
  const container = await ctx.engine.inspectContainer(containerId);
  return toSandbox({ ...row, containerId, phase: "created" }, container);
}
