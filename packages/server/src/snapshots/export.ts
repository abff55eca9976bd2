// Exporting snapshots as an archive stream (docs/archive-format.md): header,
// manifests, blobs, image export, inventory; zstd-compressed by default.
import { createHash, randomUUID, type Hash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, posix } from "node:path";
import type { Readable, Writable } from "node:stream";
import { StrataError, type Snapshot } from "@strata/contract";
import { TarScanner, tarEnd, tarHeader, tarPadding } from "../blobs/tar-scan.js";
import { zstdInto } from "../blobs/zstd.js";
import { eachChunk, writeAll } from "../streams.js";
import type { Context } from "../context.js";
import { archiveFormat, headerName, inventoryName, type ArchiveHeader, type InventoryEntry } from "./archive.js";
import { readySnapshot } from "./find.js";
import { sha256 } from "./manifest.js";

const batchSize = 1024 * 1024;

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

/** An export ready to stream: everything it needs was checked when it was made. */
export interface ExportedArchive {
  contentType: string;
  filename: string;
  /**
   * Streams the archive into `out` (an HTTP response), writing each piece only
   * once `out` has taken the last; ends `out`, or rejects, leaving `out` for
   * the caller to destroy.
   */
  writeTo(out: Writable): Promise<void>;
}

export async function exportSnapshot(ctx: Context, ref: string, options: ExportOptions): Promise<ExportedArchive> {
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

  const header: ArchiveHeader = {
    format: archiveFormat,
    version: 1,
    createdAt: new Date().toISOString(),
    snapshots: chain.map((s) => ({
      id: s.id, digest: s.digest!, kind: s.kind, ...(s.name ? { name: s.name } : {}), ...(s.imageUri && s.imageUri !== s.imageId ? { imageUri: s.imageUri } : {}),
    })),
    images,
  };


  const blobs = new Map<string, number>();
  for (const s of chain) if (s.contentDigest) blobs.set(s.contentDigest, s.checkpointBytes ?? s.sizeBytes ?? 0);
  /**
   * The archive as tar, written into `sink` in batches of about 1 MiB, each
   * awaited until `sink` has handed it on: pieces of the engine's save live
   * in a reused buffer, so nothing may hold them past that.
   */
  const writeArchive = async (sink: Writable) => {
    const inventory: InventoryEntry[] = [];
    let held: Buffer[] = [];
    let heldBytes = 0;
    const flush = async () => {
      if (!held.length) return;
      const batch = held;
      held = [];
      heldBytes = 0;
      await writeAll(sink, batch);
    };
    const put = async (buffer: Buffer) => {
      held.push(buffer);
      heldBytes += buffer.length;
      if (heldBytes >= batchSize) await flush();
    };
    const addBuffer = async (name: string, bytes: Buffer) => {
      for (const part of [tarHeader(name, bytes.length), bytes, tarPadding(bytes.length)]) await put(part);
      inventory.push({ path: name, size: bytes.length, sha256: sha256(bytes) });
    };
    const addStream = async (name: string, size: number, source: Readable) => {
      const hash = createHash("sha256");
      let seen = 0;
      await put(tarHeader(name, size));
      await eachChunk(source, (chunk) => {
        hash.update(chunk);
        seen += chunk.length;
        if (seen > size) throw new StrataError("blob_corrupt", `member '${name}' is larger than its ${size} bytes`);
        return put(chunk);
      }).finally(() => source.destroy());
      if (seen !== size) throw new StrataError("blob_corrupt", `member '${name}' is ${seen} bytes, ${size} expected`);
      await put(tarPadding(size));
      inventory.push({ path: name, size, sha256: `sha256:${hash.digest("hex")}` });
    };
    /**
     * The engine's save, member by member: each regular file goes in under
     * images/, hashed on the way. The engine saves a layer that several
     * images share once and links to it from the others' directories; the
     * archive holds regular files only, so the save index (`manifest.json`,
     * held back until whole) is rewritten to name each layer's one file, and
     * without tags: an archive names images by id, never by a tag.
     */
    const addImages = async () => {
      let member: { name: string; size: number; seen: number; hash: Hash; index?: Buffer[] } | undefined;
      /** Links in the save to the file each stands for. */
      const links = new Map<string, string>();
      const finish = () => {
        held.push(tarPadding(member!.size));
        inventory.push({ path: member!.name, size: member!.size, sha256: `sha256:${member!.hash.digest("hex")}` });
        member = undefined;
      };
      const finishIndex = () => {
        const entries = JSON.parse(Buffer.concat(member!.index!).toString("utf8")) as { Config: string; Layers: string[] }[];
        const bytes = Buffer.from(JSON.stringify(entries.map((entry) => ({ Config: entry.Config, Layers: entry.Layers.map((layer) => links.get(layer) ?? layer) }))));
        member = undefined;
        held.push(tarHeader("images/manifest.json", bytes.length), bytes, tarPadding(bytes.length));
        inventory.push({ path: "images/manifest.json", size: bytes.length, sha256: sha256(bytes) });
      };
      const scanner = new TarScanner(
        (entry) => {
          const inner = entry.name.replace(/^\.\//, "");
          if (entry.type === "2") links.set(inner, posix.normalize(posix.join(posix.dirname(inner), entry.linkname)));
          if (entry.type !== "0") return;
          const name = `images/${inner}`;
          member = { name, size: entry.size, seen: 0, hash: createHash("sha256") };
          if (inner === "manifest.json") {
            member.index = [];
            if (entry.size === 0) finishIndex();
            return;
          }
          held.push(tarHeader(name, entry.size));
          if (entry.size === 0) finish();
        },
        (piece) => {
          if (!member) return;
          member.seen += piece.length;
          if (member.index) {
            member.index.push(Buffer.from(piece));
            if (member.seen === member.size) finishIndex();
            return;
          }
          member.hash.update(piece);
          held.push(piece);
          if (member.seen === member.size) finish();
        },
      );
      // each piece is flushed before the next is read into the same memory
      await ctx.engine.saveImages(images, (piece) => {
        scanner.push(piece);
        return flush();
      }, options.signal);
      if (member || !scanner.ended) throw new Error("the engine's save ended early");
    };

    await addBuffer(headerName, Buffer.from(`${JSON.stringify(header, null, 2)}\n`));
    for (const { snapshot: s, bytes } of manifests) await addBuffer(`manifests/${s.id}.json`, bytes);
    for (const [digest, size] of blobs) await addStream(`blobs/sha256/${digest.slice("sha256:".length)}`, size, ctx.blobs.read(digest));
    if (images.length) await addImages();
    await addBuffer(inventoryName, Buffer.from(`${JSON.stringify({ members: inventory }, null, 2)}\n`));
    await put(tarEnd);
    await flush();
  };

  const compressed = (options.compression ?? "zstd") === "zstd";
  const writeTo = async (out: Writable) => {
    if (!compressed) {
      await writeArchive(out);
      out.end();
      return;
    }
    const dir = join(ctx.config.home, "tmp", `export-${randomUUID()}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      const zstd = await zstdInto("compress", dir, (piece) => writeAll(out, [piece]), options.signal);
      try {
        await writeArchive(zstd.input);
        zstd.input.end();
      } catch (error) {
        zstd.stop();
        throw error;
      } finally {
        await zstd.done.catch(() => undefined);
      }
      await zstd.done;
      out.end();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return {
    contentType: compressed ? "application/zstd" : "application/x-tar",
    filename: `${snapshot.name ?? snapshot.id}.${compressed ? "tar.zst" : "tar"}`,
    writeTo,
  };
}
