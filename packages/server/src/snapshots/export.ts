// Exporting snapshots as an archive stream (docs/archive-format.md): header,
// manifests, blobs, image export, inventory; zstd-compressed by default.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type Snapshot } from "@strata/contract";
import tar from "tar-stream";
import { zstdStream } from "../blobs/zstd.js";
import type { Context } from "../context.js";
import { archiveFormat, headerName, inventoryName, type ArchiveHeader, type InventoryEntry } from "./archive.js";
import { readySnapshot } from "./find.js";
import { sha256 } from "./manifest.js";

export interface ExportOptions {
  withParents?: boolean;
  withImage?: boolean;
  compression?: "zstd" | "none";
  signal?: AbortSignal;
}

/** The snapshot and, with parents, its ancestors that this server has: ancestors first. */
function chainOf(ctx: Context, snapshot: Snapshot, withParents: boolean): Snapshot[] {
  const chain = [snapshot];
  let parent = snapshot.parent;
  while (withParents && parent) {
    const found = ctx.index.findSnapshot(parent);
    if (!found || found.id !== parent || found.status !== "ready") break;
    chain.unshift(found);
    parent = found.parent;
  }
  return chain;
}

export async function exportSnapshot(ctx: Context, ref: string, options: ExportOptions): Promise<{ stream: Readable; contentType: string; filename: string }> {
  const snapshot = readySnapshot(ctx, ref);
  const chain = chainOf(ctx, snapshot, options.withParents ?? false);
  // Everything is checked before the first byte, so a refusal is a clean error reply.
  const manifests = chain.map((s) => {
    const bytes = readFileSync(join(ctx.snapshots.root, s.id, "manifest.json"));
    if (sha256(bytes) !== s.digest) throw new StrataError("blob_corrupt", `the manifest of snapshot ${s.id} does not match its digest`);
    return { snapshot: s, bytes };
  });
  const images = [...new Set(chain.map((s) => s.imageId).filter((id): id is string => !!id))];
  for (const id of images) {
    if (!(await ctx.engine.inspectImage(id))) throw new StrataError("image_not_found", `the engine no longer has image ${id}`);
  }
  for (const s of chain) {
    if (s.contentDigest && !ctx.blobs.has(s.contentDigest)) throw new StrataError("blob_corrupt", `the blob of snapshot ${s.id} is missing`);
  }

  const pack = tar.pack();
  const inventory: InventoryEntry[] = [];
  const addBuffer = (name: string, bytes: Buffer) => {
    pack.entry({ name, size: bytes.length, mode: 0o644, mtime: new Date(0) }, bytes);
    inventory.push({ path: name, size: bytes.length, sha256: sha256(bytes) });
  };
  const addStream = async (name: string, size: number, source: Readable) => {
    const hash = createHash("sha256");
    const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) });
    await pipeline(source, async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        yield chunk;
      }
    }, entry);
    inventory.push({ path: name, size, sha256: `sha256:${hash.digest("hex")}` });
  };

  const header: ArchiveHeader = {
    format: archiveFormat,
    version: 1,
    createdAt: new Date().toISOString(),
    snapshots: chain.map((s) => ({
      id: s.id, digest: s.digest!, kind: s.kind, ...(s.name ? { name: s.name } : {}), ...(s.imageUri && s.imageUri !== s.imageId ? { imageUri: s.imageUri } : {}),
    })),
    images,
  };

  const write = async () => {
    addBuffer(headerName, Buffer.from(`${JSON.stringify(header, null, 2)}\n`));
    for (const { snapshot: s, bytes } of manifests) addBuffer(`manifests/${s.id}.json`, bytes);
    const blobs = new Map<string, number>();
    for (const s of chain) if (s.contentDigest) blobs.set(s.contentDigest, s.checkpointBytes ?? s.sizeBytes ?? 0);
    for (const [digest, size] of blobs) await addStream(`blobs/sha256/${digest.slice("sha256:".length)}`, size, ctx.blobs.read(digest));
    if (images.length) {
      const saved = await ctx.engine.saveImages(images, options.signal);
      const extract = tar.extract();
      const done = new Promise<void>((resolve, reject) => {
        extract.on("entry", (entryHeader, stream, next) => {
          if (entryHeader.type !== "file") {
            stream.resume();
            stream.on("end", next);
            return;
          }
          addStream(`images/${entryHeader.name.replace(/^\.\//, "")}`, entryHeader.size ?? 0, stream as unknown as Readable).then(() => next(), reject);
        });
        extract.on("finish", resolve);
        extract.on("error", reject);
      });
      saved.pipe(extract);
      await done;
    }
    addBuffer(inventoryName, Buffer.from(`${JSON.stringify({ members: inventory }, null, 2)}\n`));
    pack.finalize();
  };
  write().catch((error) => pack.destroy(error));

  const out = new PassThrough();
  const compressed = (options.compression ?? "zstd") === "zstd";
  const stages: NodeJS.ReadWriteStream[] = compressed ? [zstdStream("compress", 3)] : [];
  pipeline(pack as unknown as Readable, ...(stages as []), out, { signal: options.signal }).catch((error) => {
    out.destroy(error);
    pack.destroy();
  });
  return {
    stream: out,
    contentType: compressed ? "application/zstd" : "application/x-tar",
    filename: `${snapshot.name ?? snapshot.id}.${compressed ? "tar.zst" : "tar"}`,
  };
}
