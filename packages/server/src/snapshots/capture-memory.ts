// Memory snapshots of gVisor sandboxes: checkpoint the processes (the
// container stops), commit the filesystem, store the checkpoint as a blob,
// then start the source again from the checkpoint so it carries on where it
// was. Restores put the checkpoint in a new container's checkpoint directory
// and start it from there. Invariants: a source is never restarted afresh
// behind the user's back (a failed resume fails the snapshot and leaves the
// source stopped, said in the snapshot's error); a capture is refused while
// commands exec'd into the sandbox run.
import { randomUUID } from "node:crypto";
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type Snapshot } from "@strata/contract";
import tar from "tar-stream";
import { checkedArchive } from "../blobs/tar-check.js";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import { engineError } from "../engine/errors.js";
import type { ManifestV1 } from "./manifest.js";
import { markReady } from "./ready.js";
import { snapshotImageLabels } from "./create.js";

/** A tar of a directory's regular files and subdirectories, streamed. */
function packDirectory(dir: string): Readable {
  const pack = tar.pack();
  const walk = async (path: string, prefix: string) => {
    const { readdirSync, lstatSync, createReadStream } = await import("node:fs");
    for (const name of readdirSync(path).sort()) {
      const full = join(path, name);
      const info = lstatSync(full);
      const rel = prefix ? `${prefix}/${name}` : name;
      if (info.isDirectory()) {
        pack.entry({ name: `${rel}/`, type: "directory", mode: info.mode & 0o7777 });
        await walk(full, rel);
      } else if (info.isFile()) {
        const entry = pack.entry({ name: rel, size: info.size, mode: info.mode & 0o7777 });
        await pipeline(createReadStream(full), entry);
      }
    }
  };
  walk(dir, "").then(() => pack.finalize(), (error) => pack.destroy(error));
  return pack as unknown as Readable;
}

/** Extracts a checkpoint archive (regular files and directories only) into dir. */
export async function unpackCheckpoint(source: Readable, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const extract = tar.extract();
  extract.on("entry", (header, stream, next) => {
    const name = header.name.replace(/^\.\//, "").replace(/\/$/, "");
    if (!name || name.split("/").some((part) => part === ".." || part === "") || name.startsWith("/")) {
      stream.resume();
      return extract.destroy(new StrataError("blob_corrupt", `checkpoint member '${header.name}' is unsafe`));
    }
    const target = join(dir, name);
    if (header.type === "directory") {
      mkdirSync(target, { recursive: true });
      stream.on("end", next);
      stream.resume();
    } else if (header.type === "file") {
      mkdirSync(join(target, ".."), { recursive: true });
      pipeline(stream as unknown as Readable, createWriteStream(target, { mode: header.mode ?? 0o600 })).then(() => next(), (error) => extract.destroy(error));
    } else {
      stream.on("end", next);
      stream.resume();
    }
  });
  // the directory archive check first: a name twice, or under a file, is refused (4xx) before anything is written over
  await pipeline(source, checkedArchive(true), extract);
}

/** The first line of an engine or runtime failure, cut short: runtime traces run to kilobytes. */
export function briefly(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split("\n").find((l) => l.trim()) ?? message;
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

/**
 * Puts a checkpoint archive in a created container's checkpoint directory and
 * starts the container from it. The engine uploads that directory to its
 * content store, addressed by the digest of its tar, before it starts; a second
 * upload of the same bytes while the first is still held (two restores of one
 * snapshot at once, or a restore within the second its checkpoint was written)
 * is refused as "already exists". A file unique to this start, which the
 * runtime ignores, makes every upload distinct. Throws
 * `checkpoint_restore_failed` (with the runtime's first line) when the runtime
 * cannot restore it.
 */
async function startFromArchive(ctx: Context, containerId: string, archive: Readable, name: string): Promise<void> {
  const dir = await ctx.engine.checkpointDir(containerId, name);
  try {
    await unpackCheckpoint(archive, dir);
    writeFileSync(join(dir, `strata-start-${randomUUID()}`), "");
    try {
      await ctx.engine.startContainer(containerId, name);
    } catch (error) {
      ctx.config.log({ event: "checkpoint_restore_failed", containerId, message: (error as Error).message });
      throw new StrataError("checkpoint_restore_failed", `the runtime could not restore the checkpoint: ${briefly(error)}`, { cause: error });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Refuses a memory capture while commands exec'd into the sandbox are still
 * running: the checkpoint would hold processes tied to the engine's exec
 * streams, which no restore can reconnect, and would cut those commands off.
 */
export async function refuseRunningExecs(ctx: Context, containerId: string, sandbox: string): Promise<void> {
  const running = await ctx.engine.runningExecs(containerId);
  if (running) {
    throw new StrataError(
      "sandbox_busy",
      `sandbox '${sandbox}' has ${running} command(s) running; take the memory snapshot once they end (a checkpoint cannot carry them)`,
    );
  }
}

/**
 * The source carries on in a new container made from the snapshot's image and
 * started from the checkpoint (gVisor cannot restore a container id it has
 * restored before); the sandbox keeps its id and points at the new container,
 * and the old one is removed. When no image was committed, or that fails, the
 * old container is started from its own checkpoint instead (which works only
 * for a container never restored before). Never starts the processes
 * afresh: on failure the source stays stopped and this throws
 * `checkpoint_restore_failed`.
 */
export async function resumeSource(ctx: Context, record: Snapshot, oldContainerId: string, imageId: string | undefined, name: string): Promise<void> {
  const row = ctx.index.findSandbox(record.sandboxId);
  if (!row || row.containerId !== oldContainerId) return; // deleted (or moved on) while capturing: nothing to resume
  const oldDir = await ctx.engine.checkpointDir(oldContainerId, name);
  if (!imageId) {
    await startFromArchive(ctx, oldContainerId, packDirectory(oldDir), `${name}-resume`);
    return;
  }
  let newId: string | undefined;
  try {
    newId = await ctx.engine.createContainer({
      name: `strata-${row.id}-${record.id.slice(0, 8)}`,
      image: imageId,
      env: [],
      labels: { [labelKeys.server]: ctx.serverId, [labelKeys.sandbox]: row.id, [labelKeys.record]: JSON.stringify(row) },
      runtime: "runsc",
      cpus: row.resources.cpus,
      memoryMb: row.resources.memoryMb,
      pids: row.resources.pids,
      network: row.network,
    });
    await startFromArchive(ctx, newId, packDirectory(oldDir), name);
  } catch (error) {
    if (newId) await ctx.engine.removeContainer(newId).catch(() => undefined);
    ctx.config.log({ event: "memory_resume_failed", sandboxId: row.id, snapshotId: record.id, message: (error as Error).message });
    // A container never restored before can still be restored in place.
    try {
      await startFromArchive(ctx, oldContainerId, packDirectory(oldDir), `${name}-resume`);
      ctx.config.log({ event: "memory_resumed_in_place", sandboxId: row.id, snapshotId: record.id });
      return;
    } catch {
      throw error instanceof StrataError ? error : new StrataError("checkpoint_restore_failed", `could not make the container to resume in: ${briefly(error)}`, { cause: error });
    }
  }
  ctx.index.setSandboxContainer(row.id, newId);
  await ctx.engine.removeContainer(oldContainerId).catch(() => undefined);
}

/**
 * Captures a running gVisor sandbox: checkpoint (its container stops), commit
 * the filesystem, store the checkpoint as a blob, resume the source, then
 * write the manifest. The snapshot turns ready only when the source resumed
 * from the very checkpoint it holds, which proves that checkpoint restores; a
 * failed resume fails the snapshot (`checkpoint_restore_failed`, the source
 * left stopped, said in the message) and undoes its image and blob.
 */
export async function captureMemory(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal): Promise<Snapshot> {
  await refuseRunningExecs(ctx, containerId, record.sandboxId);
  const name = `strata-${record.id}`;
  try {
    await ctx.engine.checkpoint(containerId, name);
  } catch (error) {
    // Say what became of the source: a runtime that fails part way may have stopped it.
    const state = (await ctx.engine.inspectContainer(containerId).catch(() => null))?.state ?? "gone";
    throw new StrataError(engineError(error, "checkpoint").code, `checkpoint: ${briefly(error)}; the sandbox is ${state === "running" ? "still running" : state}`, { cause: error });
  }
  let imageId: string | undefined;
  let blobDigest: string | undefined;
  let blobCreated = false;
  const undo = async () => {
    if (imageId) await ctx.engine.removeImage(`${snapshotRepo(ctx)}:${record.id}`, false).catch(() => undefined);
    // A blob this capture added and no snapshot uses goes too (identical checkpoints are stored once).
    if (blobDigest && blobCreated && ctx.index.snapshotsUsingBlob(blobDigest).length === 0) ctx.blobs.remove(blobDigest);
  };
  try {
    let blob: Awaited<ReturnType<typeof ctx.blobs.writeTar>>;
    try {
      imageId = await ctx.engine.commit(containerId, {
        repo: snapshotRepo(ctx), tag: record.id, pause: false, labels: snapshotImageLabels(ctx, record),
      });
      const dir = await ctx.engine.checkpointDir(containerId, name);
      blob = await ctx.blobs.writeTar(packDirectory(dir), { signal });
      blobDigest = blob.digest;
      blobCreated = blob.created;
    } catch (error) {
      await resumeSource(ctx, record, containerId, imageId, name).catch((resumeError) => {
        throw new StrataError("checkpoint_restore_failed", `${briefly(error)}; and the sandbox could not be resumed, so it is stopped: ${briefly(resumeError)}`, { cause: error });
      });
      throw error;
    }
    try {
      await resumeSource(ctx, record, containerId, imageId, name);
    } catch (error) {
      throw new StrataError(
        "checkpoint_restore_failed",
        `the sandbox could not be resumed from this checkpoint, so the snapshot would not restore either; the sandbox is stopped: ${briefly(error)}`,
        { cause: error },
      );
    }
    const [image, sizeBytes] = await Promise.all([ctx.engine.inspectImage(imageId), ctx.engine.topLayerSize(imageId)]);
    if (!image) throw new StrataError("internal", `the committed image ${imageId} vanished`);
    const manifest: ManifestV1 = {
      schemaVersion: 1,
      id: record.id,
      kind: "memory",
      sandboxId: record.sandboxId,
      parent: record.parent ? { id: record.parent, digest: record.parentDigest ?? null } : null,
      baseImage: record.baseImage,
      labels: record.labels,
      ...(record.settings ? { settings: record.settings } : {}),
      content: {
        imageId, sizeBytes, imageSizeBytes: image.sizeBytes, layers: image.layers,
        blobDigest: blob.digest, blobSizeBytes: blob.sizeBytes, fileCount: blob.fileCount,
      },
      createdAt: record.createdAt,
    };
    return await markReady(ctx, manifest, { name: record.name, storedBytes: blob.storedBytes });
  } catch (error) {
    await undo();
    throw error;
  } finally {
    await ctx.engine.deleteCheckpoint(containerId, name).catch(() => undefined);
    if (blobDigest) ctx.blobs.unpin(blobDigest);
  }
}

/**
 * Starts a created container from a memory snapshot's checkpoint. Throws
 * `checkpoint_restore_failed` when the runtime cannot restore it.
 */
export async function startFromCheckpoint(ctx: Context, containerId: string, snapshot: Snapshot): Promise<void> {
  await startFromArchive(ctx, containerId, ctx.blobs.read(snapshot.contentDigest!), `strata-${snapshot.id}`);
}
