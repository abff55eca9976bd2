// Memory snapshots of gVisor sandboxes: checkpoint the processes (the
// container stops), commit the filesystem, store the checkpoint as a blob,
// then start the source again from the checkpoint so it carries on where it
// was. Restores put the checkpoint in a new container's checkpoint directory
// and start it from there.
import { mkdirSync, rmSync } from "node:fs";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type Snapshot } from "@strata/contract";
import tar from "tar-stream";
import { checkedArchive } from "../blobs/tar-check.js";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import type { ManifestV1 } from "./manifest.js";
import { markReady } from "./ready.js";

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

/**
 * The source carries on in a new container made from the snapshot's image and
 * started from the checkpoint (gVisor cannot restore a container id it has
 * run before); the sandbox keeps its id and points at the new container.
 */
async function resumeSource(ctx: Context, record: Snapshot, oldContainerId: string, imageId: string | undefined, name: string): Promise<void> {
  const row = ctx.index.findSandbox(record.sandboxId);
  if (row && imageId) {
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
      const dir = await ctx.engine.checkpointDir(newId, name);
      try {
        await unpackCheckpoint(packDirectory(await ctx.engine.checkpointDir(oldContainerId, name)), dir);
        await ctx.engine.startContainer(newId, name);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      ctx.index.setSandboxContainer(row.id, newId);
      await ctx.engine.removeContainer(oldContainerId);
      return;
    } catch (error) {
      if (newId) await ctx.engine.removeContainer(newId).catch(() => undefined);
      ctx.config.log({ event: "memory_resume_failed", sandboxId: row.id, message: (error as Error).message });
    }
  }
  // Fall back to the source's own container, restored or at least started.
  try {
    await ctx.engine.startContainer(oldContainerId, name);
  } catch {
    await ctx.engine.startContainer(oldContainerId).catch(() => undefined);
  }
}

export async function captureMemory(ctx: Context, record: Snapshot, containerId: string, signal: AbortSignal): Promise<Snapshot> {
  const name = `strata-${record.id}`;
  await ctx.engine.checkpoint(containerId, name);
  let resumed = false;
  let imageId: string | undefined;
  const resume = async () => {
    if (resumed) return;
    resumed = true;
    await resumeSource(ctx, record, containerId, imageId, name);
    await ctx.engine.deleteCheckpoint(containerId, name).catch(() => undefined);
  };
  let blobDigest: string | undefined;
  try {
    imageId = await ctx.engine.commit(containerId, {
      repo: snapshotRepo(ctx), tag: record.id, pause: false,
      labels: { [labelKeys.server]: ctx.serverId, [labelKeys.snapshot]: record.id },
    });
    const dir = await ctx.engine.checkpointDir(containerId, name);
    const blob = await ctx.blobs.writeTar(packDirectory(dir), { signal });
    blobDigest = blob.digest;
    await resume();
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
      content: {
        imageId, sizeBytes, imageSizeBytes: image.sizeBytes, layers: image.layers,
        blobDigest: blob.digest, blobSizeBytes: blob.sizeBytes, fileCount: blob.fileCount,
      },
      createdAt: record.createdAt,
    };
    return markReady(ctx, manifest, { name: record.name, storedBytes: blob.storedBytes });
  } catch (error) {
    await resume();
    if (imageId) await ctx.engine.removeImage(`${snapshotRepo(ctx)}:${record.id}`, false).catch(() => undefined);
    throw error;
  } finally {
    if (blobDigest) ctx.blobs.unpin(blobDigest);
  }
}

/** Puts a memory snapshot's checkpoint in place for a created container and starts it from there. */
export async function startFromCheckpoint(ctx: Context, containerId: string, snapshot: Snapshot): Promise<void> {
  const name = `strata-${snapshot.id}`;
  const dir = await ctx.engine.checkpointDir(containerId, name);
  try {
    await unpackCheckpoint(ctx.blobs.read(snapshot.contentDigest!), dir);
    await ctx.engine.startContainer(containerId, name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
