// Importing an archive (docs/archive-format.md): stream it into a staging
// directory under the home, checking every member as it passes; check the
// inventory at the end; then load images, promote blobs and manifests with
// atomic renames and index the records. Any failure undoes what this import
// made and removes the staging directory.
import { createHash, randomUUID } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Transform, Writable, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError, type ImportResult, type Snapshot } from "@strata/contract";
import tar from "tar-stream";
import { zstdStream } from "../blobs/zstd.js";
import { coalesce } from "../streams.js";
import { snapshotRepo, type Context } from "../context.js";
import { engineError } from "../engine/errors.js";
import { archiveFormat, classifyMember, headerName, inventoryName, type ArchiveHeader, type InventoryEntry } from "./archive.js";
import { parseManifest, sha256, type ManifestV1 } from "./manifest.js";
import { markReady } from "./ready.js";

const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const maxSmallMember = 1024 * 1024;

interface Staged {
  dir: string;
  header: ArchiveHeader;
  manifests: Map<string, { manifest: ManifestV1; bytes: Buffer }>;
  members: Map<string, { size: number; sha256: string }>;
}

/** The body with zstd undone when its magic bytes say so. */
async function decompressed(body: Readable): Promise<Readable> {
  const head = await new Promise<Buffer>((resolve, reject) => {
    const cleanup = () => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
    };
    const onData = (chunk: Buffer) => {
      cleanup();
      body.pause();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.alloc(0));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("error", onError);
  });
  if (head.length) body.unshift(head);
  if (head.length >= 4 && head.subarray(0, 4).equals(zstdMagic)) {
    const unzstd = zstdStream("decompress");
    body.pipe(coalesce()).pipe(unzstd);
    body.on("error", (error) => unzstd.destroy(error));
    return unzstd;
  }
  return body;
}

const invalid = (message: string) => new StrataError("archive_invalid", message);

/**
 * Images the archive carries go straight into the engine's load while the
 * archive streams (the engine only commits them once its own tar is whole),
 * so importing costs one pass. Images this engine had before are not loaded.
 */
interface Loader {
  pack?: tar.Pack;
  done?: Promise<void>;
  /** Image ids that were missing before this import: removed if it fails. */
  missing: string[];
}

async function stage(ctx: Context, body: Readable, dir: string, loader: Loader, signal?: AbortSignal): Promise<Staged> {
  const source = await decompressed(body);
  const extract = tar.extract();
  const staged: Partial<Staged> & Pick<Staged, "dir" | "manifests" | "members"> = { dir, manifests: new Map(), members: new Map() };
  let inventory: InventoryEntry[] | undefined;
  let count = 0;

  const readSmall = async (entry: Readable, size: number): Promise<Buffer> => {
    if (size > maxSmallMember) throw invalid(`a metadata member is larger than ${maxSmallMember} bytes`);
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };

  extract.on("entry", (header, stream, next) => {
    const entry = stream as unknown as Readable;
    const handle = async () => {
      const name = header.name;
      if (header.type !== "file") throw new StrataError("archive_unsafe_path", `member '${name}' is a ${header.type}; only regular files are allowed`);
      const kind = classifyMember(name);
      if ("unsafe" in kind) throw new StrataError("archive_unsafe_path", `member '${name}' is refused: ${kind.unsafe}`);
      if (staged.members.has(name)) throw invalid(`member '${name}' appears twice`);
      if (inventory) throw invalid(`member '${name}' follows the inventory`);
      count++;
      if (count === 1 && kind.kind !== "header") throw invalid(`the first member must be ${headerName}`);
      const size = header.size ?? 0;

      if (kind.kind === "header" || kind.kind === "manifest" || kind.kind === "inventory") {
        const bytes = await readSmall(entry, size);
        const digest = sha256(bytes);
        if (kind.kind === "header") {
          staged.header = parseHeader(bytes);
          for (const id of staged.header.images) if (!(await ctx.engine.inspectImage(id))) loader.missing.push(id);
          if (loader.missing.length) {
            loader.pack = tar.pack();
            loader.done = ctx.engine.loadImages(loader.pack as unknown as Readable, signal);
            loader.done.catch(() => undefined);
          }
        } else if (kind.kind === "inventory") {
          inventory = parseInventory(bytes);
          loader.pack?.finalize();
        }
        else {
          const declared = staged.header!.snapshots.find((s) => s.id === kind.id);
          if (!declared) throw invalid(`manifest ${kind.id} is not declared in the header`);
          if (declared.digest !== digest) throw new StrataError("archive_digest_mismatch", `manifest ${kind.id} has digest ${digest}, the header says ${declared.digest}`);
          let manifest: ManifestV1;
          try {
            manifest = parseManifest(bytes.toString("utf8"));
          } catch (error) {
            throw invalid(`manifest ${kind.id}: ${(error as Error).message}`);
          }
          if (manifest.id !== kind.id || manifest.kind !== declared.kind) throw invalid(`manifest ${kind.id} does not match its header entry`);
          staged.manifests.set(kind.id!, { manifest, bytes });
        }
        if (kind.kind !== "inventory") staged.members.set(name, { size: bytes.length, sha256: digest });
        return;
      }

      // Blobs stream to the staging directory, image members into the engine's load; hashed on the way.
      const hash = createHash("sha256");
      let seen = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          seen += chunk.length;
          done(null, chunk);
        },
      });
      if (kind.kind === "image") {
        const sink = loader.pack ? loader.pack.entry({ name: name.slice("images/".length), size, mode: 0o644 }) : new Writable({ write: (_c, _e, done) => done() });
        await pipeline(entry, meter, sink);
      } else {
        const target = join(dir, name);
        mkdirSync(join(target, ".."), { recursive: true });
        await pipeline(entry, meter, createWriteStream(target, { mode: 0o600 }));
      }
      const digest = `sha256:${hash.digest("hex")}`;
      if (seen !== size) throw new StrataError("archive_truncated", `member '${name}' ended after ${seen} of ${size} bytes`);
      if (kind.kind === "blob" && digest !== kind.id) {
        throw new StrataError("archive_digest_mismatch", `blob '${name}' has digest ${digest}`);
      }
      staged.members.set(name, { size: seen, sha256: digest });
    };
    handle().then(() => next(), (error) => extract.destroy(error));
  });

  try {
    await pipeline(source, extract, { signal });
  } catch (error) {
    loader.pack?.destroy();
    await loader.done?.catch(() => undefined);
    if (error instanceof StrataError) throw error;
    const message = (error as Error).message ?? String(error);
    if (/unexpected end|premature|end of data|truncated/i.test(message)) throw new StrataError("archive_truncated", `the archive ends early: ${message}`);
    throw invalid(`the archive cannot be read: ${message}`);
  }
  // An archive that ended without its inventory never finished the engine's tar: abort that load.
  if (!inventory) loader.pack?.destroy();
  // The engine's verdict comes after ours: a tampered layer is a digest mismatch first.
  const loadFailure = loader.done ? await loader.done.then(() => null, (error: unknown) => error) : null;
  if (!staged.header) throw new StrataError("archive_truncated", "the archive holds no header");
  if (!inventory) throw new StrataError("archive_truncated", `the archive ends before its ${inventoryName}`);
  checkInventory(inventory, staged.members);
  const header = staged.header;
  for (const declared of header.snapshots) {
    const entry = staged.manifests.get(declared.id);
    if (!entry) throw invalid(`the manifest of snapshot ${declared.id} is missing`);
    const blob = entry.manifest.content.blobDigest;
    if (blob && !staged.members.has(`blobs/sha256/${blob.slice("sha256:".length)}`)) throw invalid(`the blob ${blob} of snapshot ${declared.id} is missing`);
    const image = entry.manifest.content.imageId;
    if (image && !header.images.includes(image)) throw invalid(`the image ${image} of snapshot ${declared.id} is not in the archive`);
  }
  if (loadFailure) throw engineError(loadFailure, "load images");
  return { dir, header, manifests: staged.manifests, members: staged.members };
}

function parseHeader(bytes: Buffer): ArchiveHeader {
  let header: ArchiveHeader;
  try {
    header = JSON.parse(bytes.toString("utf8")) as ArchiveHeader;
  } catch {
    throw invalid(`${headerName} is not JSON`);
  }
  if (header.format !== archiveFormat || header.version !== 1) throw invalid(`${headerName} is not a version 1 ${archiveFormat}`);
  if (!Array.isArray(header.snapshots) || !header.snapshots.length || !Array.isArray(header.images)) throw invalid(`${headerName} lists no snapshots`);
  for (const s of header.snapshots) {
    if (typeof s.id !== "string" || typeof s.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(s.digest)) throw invalid(`${headerName} has a malformed snapshot entry`);
    if (s.name !== undefined && (typeof s.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s.name))) throw invalid(`${headerName} has an invalid name`);
  }
  for (const image of header.images) if (typeof image !== "string" || !/^sha256:[0-9a-f]{64}$/.test(image)) throw invalid(`${headerName} has a malformed image id`);
  return header;
}

function parseInventory(bytes: Buffer): InventoryEntry[] {
  try {
    const parsed = JSON.parse(bytes.toString("utf8")) as { members: InventoryEntry[] };
    if (!Array.isArray(parsed.members)) throw new Error("no members");
    return parsed.members;
  } catch (error) {
    throw invalid(`${inventoryName} is malformed: ${(error as Error).message}`);
  }
}

function checkInventory(inventory: InventoryEntry[], members: Map<string, { size: number; sha256: string }>): void {
  const listed = new Map(inventory.map((entry) => [entry.path, entry]));
  for (const [name, seen] of members) {
    const entry = listed.get(name);
    if (!entry) throw invalid(`member '${name}' is not listed in the inventory`);
    if (entry.size !== seen.size || entry.sha256 !== seen.sha256) {
      throw new StrataError("archive_digest_mismatch", `member '${name}' is ${seen.size} bytes with digest ${seen.sha256}; the inventory says ${entry.size} bytes, ${entry.sha256}`);
    }
  }
  for (const name of listed.keys()) if (!members.has(name)) throw new StrataError("archive_truncated", `member '${name}' is listed but missing`);
}

export async function importArchive(ctx: Context, body: Readable, signal?: AbortSignal): Promise<ImportResult> {
  const dir = join(ctx.config.home, "tmp", `import-${randomUUID()}`);
  mkdirSync(dir, { recursive: true });
  const undo: (() => Promise<void> | void)[] = [];
  try {
    const loader: Loader = { missing: [] };
    undo.push(async () => {
      for (const id of loader.missing) await ctx.engine.removeImage(id, true).catch(() => undefined);
    });
    const staged = await stage(ctx, body, dir, loader, signal);
    const { header } = staged;

    // Decide everything before changing anything.
    const toAdd: ArchiveHeader["snapshots"] = [];
    const skipped: string[] = [];
    for (const declared of header.snapshots) {
      const local = ctx.index.findSnapshot(declared.id);
      if (local && local.id === declared.id) {
        if (local.digest === declared.digest) {
          skipped.push(declared.id);
          continue;
        }
        throw new StrataError("snapshot_exists", `snapshot ${declared.id} exists here with another digest (${local.digest})`);
      }
      if (declared.name) {
        const owner = ctx.index.snapshotNameOwner(declared.name);
        if (owner && owner !== declared.id) throw new StrataError("snapshot_name_taken", `a different snapshot is named '${declared.name}' here`);
      }
      toAdd.push(declared);
    }

    for (const id of loader.missing) {
      if (!(await ctx.engine.inspectImage(id))) throw invalid(`the archive's images did not yield image ${id}`);
    }

    const imported: Snapshot[] = [];
    for (const declared of toAdd) {
      const { manifest, bytes } = staged.manifests.get(declared.id)!;
      let storedBytes: number | undefined;
      if (manifest.content.blobDigest) {
        const digest = manifest.content.blobDigest;
        if (!ctx.blobs.has(digest)) {
          const blob = await ctx.blobs.writeTar(createReadStream(join(dir, "blobs", "sha256", digest.slice("sha256:".length))), { signal });
          try {
            if (blob.digest !== digest) throw new StrataError("archive_digest_mismatch", `blob ${digest} changed while importing`);
            if (blob.created) undo.push(() => ctx.blobs.remove(digest));
          } finally {
            ctx.blobs.unpin(blob.digest);
          }
        }
        storedBytes = ctx.blobs.storedSize(digest);
      }
      if (manifest.content.imageId) {
        await ctx.engine.tagImage(manifest.content.imageId, snapshotRepo(ctx), manifest.id);
        undo.push(() => ctx.engine.removeImage(`${snapshotRepo(ctx)}:${manifest.id}`, true).then(() => undefined, () => undefined));
      }
      undo.push(() => {
        ctx.snapshots.remove(manifest.id);
        ctx.index.deleteSnapshot(manifest.id);
      });
      const record = markReady(ctx, manifest, {
        ...(declared.name ? { name: declared.name } : {}),
        ...(declared.imageUri ? { imageUri: declared.imageUri } : {}),
        ...(storedBytes !== undefined ? { storedBytes } : {}),
      }, bytes);
      imported.push(record);
    }
    const last = header.snapshots[header.snapshots.length - 1]!;
    const snapshot = ctx.index.findSnapshot(last.id)!;
    ctx.config.log({ event: "snapshots_imported", imported: imported.map((s) => s.id), skipped });
    return { snapshot, imported: imported.map((s) => s.id), skipped };
  } catch (error) {
    for (const step of undo.reverse()) await step();
    body.resume();
    throw error;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

