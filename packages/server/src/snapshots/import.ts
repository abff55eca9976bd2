// Importing an archive (docs/archive-format.md): stream it into a staging
// directory under the home, checking every member as it passes; check the
// inventory at the end; then load images, promote blobs and manifests with
// atomic renames and index the records. Any failure undoes what this import
// made and removes the staging directory.
//
// An archive is data, never a command to the engine: the engine's load sees
// only the images the header lists (their tags and the legacy `repositories`
// member are left out, so a load never tags or re-points anything), every
// image a manifest names must come whole from the archive (its config and
// every layer, checked against the engine's diff ids), and a refused import
// removes exactly what the engine reports it loaded, once the engine has
// given its verdict.
import { createHash, randomUUID, type Hash } from "node:crypto";
import { createReadStream, mkdirSync, rmSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { isName, StrataError, type ImportResult, type Snapshot } from "@strata/contract";
import { TarScanner, tarEnd, tarHeader, tarPadding, type TarEntry } from "../blobs/tar-scan.js";
import { zstdInto } from "../blobs/zstd.js";
import { batchedInto, eachChunk, writeAll } from "../streams.js";
import { snapshotRepo, type Context } from "../context.js";
import { DirectoryArchiveCheck } from "../blobs/tar-check.js";
import type { StagingShare } from "./staging.js";
import { engineError } from "../engine/errors.js";
import { archiveFormat, classifyMember, headerName, inventoryName, type ArchiveHeader, type InventoryEntry, type MemberKind } from "./archive.js";
import { parseManifest, sha256, type ManifestV1 } from "./manifest.js";
import { markReady } from "./ready.js";

const zstdMagic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const maxSmallMember = 1024 * 1024;
/** Zeros a tar writer may pad its end with (GNU tar fills its last 10 KiB record). */
const maxTrailing = 1024 * 1024;
/** Image members the engine's load never sees: they carry tags (`repositories`, OCI `index.json`). */
const withheldImageMembers = new Set(["repositories", "index.json"]);

interface Staged {
  dir: string;
  header: ArchiveHeader;
  manifests: Map<string, { manifest: ManifestV1; bytes: Buffer }>;
  members: Map<string, { size: number; sha256: string }>;
}

const invalid = (message: string) => new StrataError("archive_invalid", message);
const truncated = (message: string) => new StrataError("archive_truncated", message);

/** The first chunk of a stream, put back so the stream still starts with it. */
async function peek(body: Readable): Promise<Buffer> {
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
  return head;
}

/**
 * Hands the archive to `take` a piece at a time, zstd undone when its magic
 * bytes say so (zstd's output comes in one reused buffer: see `zstdInto`).
 */
async function eachPiece(body: Readable, dir: string, take: (piece: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const head = await peek(body);
  if (!head.length) throw truncated("the archive is empty");
  if (!(head.length >= 4 && head.subarray(0, 4).equals(zstdMagic))) return eachChunk(body, take);
  const unzstd = await zstdInto("decompress", dir, take, signal);
  // a body that stops short stops zstd
  body.on("error", unzstd.stop);
  body.on("close", () => {
    if (!body.readableEnded) unzstd.stop();
  });
  const feed = batchedInto(unzstd.input);
  feed.on("error", () => undefined); // a broken input shows in zstd's exit
  body.pipe(feed);
  await unzstd.done;
}

/**
 * Images the archive carries go straight into the engine's load while the
 * archive streams (the engine only commits them once its own tar is whole),
 * so importing costs one pass. When the engine has every image already, none
 * is loaded, but the archive must still hold each one whole.
 */
interface Loader {
  input?: Writable;
  done?: Promise<void>;
  /** Header images the engine had before this import: never removed by it. */
  present: Set<string>;
  /** Set once the engine has been given the end of its tar: from then on its load runs to its verdict. */
  sealed?: boolean;
  /** Header images the engine lacked: the load's work. */
  missing: string[];
  /** What the engine reported loading: removed if the import fails. */
  loaded: string[];
}

/** One image of the engine's save index (`images/manifest.json`), as the load is given it. */
interface SaveEntry {
  Config: string;
  Layers: string[];
}

/**
 * The save index, checked for shape, with only what the load needs: no
 * `RepoTags` (the load would tag or re-point them), no `Parent`, no
 * `LayerSources`.
 */
function parseSaveIndex(bytes: Buffer): SaveEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw invalid("images/manifest.json is not JSON");
  }
  const isPath = (value: unknown): value is string => typeof value === "string" && value.length > 0;
  if (!Array.isArray(parsed) || !parsed.length) throw invalid("images/manifest.json lists no images");
  return parsed.map((entry: { Config?: unknown; Layers?: unknown }) => {
    if (!entry || !isPath(entry.Config) || !Array.isArray(entry.Layers) || !entry.Layers.every(isPath)) throw invalid("images/manifest.json has a malformed entry");
    return { Config: entry.Config, Layers: entry.Layers };
  });
}

// ---- Directory blob check -------------------------------------------------
// Every directory blob is read here once, as it is staged, by the same strict
// check restores, verify and captures run (blobs/tar-check.ts): one reading of
// the stream, so what is accepted here is what a restore extracts.
interface BlobCheck {
  push(piece: Buffer): void;
  end(): void;
}

function directoryBlobCheck(name: string): BlobCheck {
  const check = new DirectoryArchiveCheck(false, {});
  const named = (error: unknown) => {
    if (error instanceof StrataError) return new StrataError(error.code, `blob '${name}': ${error.message}`);
    return new StrataError("archive_unsafe_path", `blob '${name}' cannot be read as a tar: ${(error as Error).message}`);
  };
  return {
    push(piece) {
      try {
        check.push(piece);
      } catch (error) {
        throw named(error);
      }
    },
    end() {
      try {
        check.end();
      } catch (error) {
        throw named(error);
      }
    },
  };
}
/** A memory snapshot's checkpoint blob: a tar of regular files and directories with plain relative names. */
function checkpointBlobCheck(name: string): BlobCheck {
  const unsafe = (why: string) => new StrataError("archive_unsafe_path", `blob '${name}' is not a checkpoint: ${why}`);
  const scanner = new TarScanner((entry) => {
    if (entry.type !== "0" && entry.type !== "5") throw unsafe(`member '${entry.name}' is a ${tarTypes[entry.type] ?? `type '${entry.type}' entry`}`);
    const parts = entry.name.replace(/^\.\//, "").replace(/\/$/, "").split("/");
    if (entry.name.startsWith("/") || parts.some((part) => part === ".." || part === "")) throw unsafe(`member '${entry.name}' has an unsafe name`);
  });
  return {
    push(piece) {
      try {
        scanner.push(piece);
      } catch (error) {
        throw error instanceof StrataError ? error : unsafe((error as Error).message);
      }
    },
    end() {
      if (!scanner.atBoundary) throw invalid(`blob '${name}' ends inside a tar member`);
    },
  };
}
// ---------------------------------------------------------------------------

const tarTypes: Record<string, string> = {
  "1": "hard link", "2": "symlink", "3": "character device", "4": "block device", "5": "directory", "6": "fifo", "7": "contiguous file",
};

/** The member being read. */
interface Member {
  name: string;
  kind: MemberKind;
  id?: string;
  size: number;
  seen: number;
  hash: Hash;
  /** Copies of a metadata member's bytes. */
  parts?: Buffer[];
  /** A blob's file in the staging directory, and where the next bytes go. */
  file?: FileHandle;
  position: number;
  /** An image member whose bytes go into the engine's load as they come. */
  forward?: boolean;
  /** The check of a directory or checkpoint blob, fed as it is staged. */
  check?: BlobCheck;
}

/**
 * Reads the archive member by member as it streams: checks each member's
 * name and type, hashes it, keeps metadata, writes blobs to the staging
 * directory and image members into the engine's load.
 */
class Stager {
  readonly manifests = new Map<string, { manifest: ManifestV1; bytes: Buffer }>();
  readonly members = new Map<string, { size: number; sha256: string }>();
  header?: ArchiveHeader;
  inventory?: InventoryEntry[];
  /** The engine's save index from `images/manifest.json`. */
  saveIndex?: SaveEntry[];
  /** The kind of snapshot that names each blob, from the manifests read so far. */
  private readonly blobKinds = new Map<string, string>();
  /** Bytes read after the last member's content, which may only be padding and the end blocks. */
  private trailing = 0;
  private member?: Member;
  private count = 0;
  /** Set when a write into the engine's load failed: the engine's verdict then says why. */
  engineBroke = false;
  /** The steps of the piece being read, in order: a piece is done when its last step is. */
  private steps: Promise<void> = Promise.resolve();
  /** The piece being scanned, and where in it the last member content seen ends. */
  private piece?: Buffer;
  private contentEnd = 0;
  private readonly scanner = new TarScanner(
    (entry) => this.then(() => this.begin(entry)),
    (content) => {
      if (this.piece && content.buffer === this.piece.buffer) this.contentEnd = content.byteOffset + content.length - this.piece.byteOffset;
      this.then(() => this.content(content));
    },
  );

  constructor(private readonly ctx: Context, private readonly dir: string, private readonly loader: Loader, private readonly share: StagingShare) {}

  /** Reads one piece; resolves once nothing refers to its memory. */
  take(piece: Buffer): Promise<void> {
    if (!this.scanner.ended) {
      this.piece = piece;
      this.contentEnd = 0;
      try {
        this.scanner.push(piece);
      } catch (error) {
        this.then(() => {
          throw invalid(`the archive cannot be read: ${(error as Error).message}`);
        });
      }
      this.piece = undefined;
      if (!this.scanner.ended) return this.steps;
      // the end came in this piece: what follows the last member's content must be padding
      piece = piece.subarray(this.contentEnd);
    }
    this.trailing += piece.length;
    if (this.trailing > maxTrailing || piece.some((byte) => byte !== 0)) {
      this.then(() => {
        throw invalid("the archive has data after its end");
      });
    }
    return this.steps;
  }

  /** After the last piece: the archive must have ended between members. */
  finish(): void {
    if (!this.scanner.atBoundary || this.member) throw truncated(`the archive ends inside member '${this.member?.name ?? "?"}'`);
  }

  /** Closes what a failed read left open. */
  async abandon(): Promise<void> {
    await this.steps.catch(() => undefined);
    await this.member?.file?.close().catch(() => undefined);
  }

  private then(step: () => Promise<void> | void): void {
    this.steps = this.steps.then(step);
  }

  private async begin(entry: TarEntry): Promise<void> {
    const name = entry.name;
    if (entry.type !== "0") throw new StrataError("archive_unsafe_path", `member '${name}' is a ${tarTypes[entry.type] ?? `type '${entry.type}' entry`}; only regular files are allowed`);
    const kind = classifyMember(name);
    if ("unsafe" in kind) throw new StrataError("archive_unsafe_path", `member '${name}' is refused: ${kind.unsafe}`);
    if (this.members.has(name)) throw invalid(`member '${name}' appears twice`);
    if (this.inventory) throw invalid(`member '${name}' follows the inventory`);
    if (++this.count === 1 && kind.kind !== "header") throw invalid(`the first member must be ${headerName}`);
    const member: Member = { name, kind: kind.kind, ...(kind.id ? { id: kind.id } : {}), size: entry.size, seen: 0, hash: createHash("sha256"), position: 0 };
    if (kind.kind === "header" || kind.kind === "manifest" || kind.kind === "inventory") {
      if (entry.size > maxSmallMember) throw invalid(`a metadata member is larger than ${maxSmallMember} bytes`);
      member.parts = [];
    } else if (kind.kind === "blob") {
      const named = this.blobKinds.get(kind.id!);
      if (!named) throw invalid(`blob '${name}' is named by no manifest before it`);
      // The tar header's size is what staging this member will write: refused before a byte is staged.
      if (named === "directory" && entry.size > this.ctx.config.maxSnapshotBytes) {
        throw new StrataError("snapshot_too_large", `blob '${name}' is ${entry.size} bytes, past the server's limit of ${this.ctx.config.maxSnapshotBytes} bytes for a directory snapshot`);
      }
      this.share.take(entry.size);
      if (named === "directory") member.check = directoryBlobCheck(name);
      else if (named === "memory") member.check = checkpointBlobCheck(name);
      const target = join(this.dir, name);
      mkdirSync(join(target, ".."), { recursive: true });
      member.file = await open(target, "wx", 0o600);
    } else if (kind.kind === "image") {
      if (!this.header!.images.length) throw invalid(`member '${name}' is an image member, but ${headerName} lists no images`);
      const inner = name.slice("images/".length);
      // what the engine's load stages, headers included
      this.share.take(entry.size + 512);
      if (inner === "manifest.json") {
        if (entry.size > maxSmallMember) throw invalid(`images/manifest.json is larger than ${maxSmallMember} bytes`);
        member.parts = [];
      } else if (this.loader.input && !withheldImageMembers.has(inner)) {
        member.forward = true;
        await this.toEngine([tarHeader(inner, entry.size)]);
      }
    }
    this.member = member;
    if (entry.size === 0) await this.end();
  }

  private async content(piece: Buffer): Promise<void> {
    const member = this.member!;
    member.hash.update(piece);
    member.seen += piece.length;
    if (member.parts) member.parts.push(Buffer.from(piece));
    else if (member.file) {
      member.check?.push(piece);
      for (let done = 0; done < piece.length;) {
        const { bytesWritten } = await member.file.write(piece, done, piece.length - done, member.position);
        done += bytesWritten;
        member.position += bytesWritten;
      }
    } else if (member.forward) await this.toEngine([piece]);
    if (member.seen === member.size) await this.end();
  }

  private async end(): Promise<void> {
    const member = this.member!;
    this.member = undefined;
    const digest = `sha256:${member.hash.digest("hex")}`;
    if (member.file) {
      await member.file.close();
      if (digest !== member.id) throw new StrataError("archive_digest_mismatch", `blob '${member.name}' has digest ${digest}`);
      member.check?.end();
    }
    if (member.forward) await this.toEngine([tarPadding(member.size)]);
    if (member.kind === "image" && member.parts) {
      // the save index goes to the engine rewritten: only the images' configs and layers
      this.saveIndex = parseSaveIndex(Buffer.concat(member.parts));
      if (this.loader.input) {
        const rewritten = Buffer.from(JSON.stringify(this.saveIndex));
        await this.toEngine([tarHeader("manifest.json", rewritten.length), rewritten, tarPadding(rewritten.length)]);
      }
    } else if (member.parts) await this.metadata(member, Buffer.concat(member.parts), digest);
    if (member.kind !== "inventory") this.members.set(member.name, { size: member.seen, sha256: digest });
  }

  /** The header, a manifest or the inventory, whole. */
  private async metadata(member: Member, bytes: Buffer, digest: string): Promise<void> {
    if (member.kind === "header") {
      this.header = parseHeader(bytes);
      for (const id of this.header.images) {
        if (await this.ctx.engine.inspectImage(id)) this.loader.present.add(id);
        else this.loader.missing.push(id);
      }
      if (this.loader.missing.length) {
        // Not cut by the client's signal: once the engine has the whole tar, its verdict is awaited, so the undo knows what it loaded.
        const load = this.ctx.engine.loadImages(undefined, (ref) => this.loader.loaded.push(ref));
        this.loader.input = load.input;
        this.loader.done = load.done;
        load.done.catch(() => undefined);
      }
    } else if (member.kind === "inventory") {
      this.inventory = parseInventory(bytes);
      // the last moment to keep the engine's load from committing anything
      this.checkImageMembers();
      if (this.loader.input) {
        await this.toEngine([tarEnd]);
        this.loader.input.end();
        this.loader.sealed = true;
      }
    } else {
      const id = member.id!;
      const declared = this.header!.snapshots.find((s) => s.id === id);
      if (!declared) throw invalid(`manifest ${id} is not declared in the header`);
      if (declared.digest !== digest) throw new StrataError("archive_digest_mismatch", `manifest ${id} has digest ${digest}, the header says ${declared.digest}`);
      let manifest: ManifestV1;
      try {
        manifest = parseManifest(bytes.toString("utf8"));
      } catch (error) {
        throw invalid(`manifest ${id}: ${(error as Error).message}`);
      }
      if (manifest.id !== id || manifest.kind !== declared.kind) throw invalid(`manifest ${id} does not match its header entry`);
      this.manifests.set(id, { manifest, bytes });
      const blob = manifest.content.blobDigest;
      if (blob && this.blobKinds.get(blob) !== "directory") this.blobKinds.set(blob, manifest.kind);
    }
  }

  /**
   * The save index names exactly the images the header lists, each once,
   * every config and layer it names is a member of the archive, and every
   * image is a snapshot's.
   */
  private checkImageMembers(): void {
    const images = this.header!.images;
    if (!images.length) return;
    if (!this.saveIndex) throw invalid(`${headerName} lists images, but the archive holds no images/manifest.json`);
    const named = new Set<string>();
    for (const entry of this.saveIndex) {
      const config = this.members.get(`images/${entry.Config}`);
      if (!config) throw invalid(`images/manifest.json names the config '${entry.Config}', which the archive does not hold`);
      if (!images.includes(config.sha256)) throw invalid(`images/manifest.json names image ${config.sha256}, which ${headerName} does not list`);
      if (named.has(config.sha256)) throw invalid(`images/manifest.json names image ${config.sha256} twice`);
      named.add(config.sha256);
      for (const layer of entry.Layers) {
        if (!this.members.has(`images/${layer}`)) throw invalid(`images/manifest.json names the layer '${layer}', which the archive does not hold`);
      }
    }
    for (const id of images) if (!named.has(id)) throw invalid(`the image ${id} that ${headerName} lists is not in images/manifest.json`);
    // an image no snapshot uses would be loaded and left behind untagged
    const used = new Set([...this.manifests.values()].map(({ manifest }) => manifest.content.imageId));
    for (const id of images) if (!used.has(id)) throw invalid(`the image ${id} that ${headerName} lists belongs to no snapshot of the archive`);
  }

  /** Writes into the engine's load; resolves once the engine has been handed the bytes. */
  private async toEngine(buffers: Buffer[]): Promise<void> {
    try {
      await writeAll(this.loader.input!, buffers);
    } catch (error) {
      this.engineBroke = true;
      throw error;
    }
  }
}

async function stage(ctx: Context, body: Readable, dir: string, loader: Loader, share: StagingShare, signal?: AbortSignal): Promise<Staged> {
  const stager = new Stager(ctx, dir, loader, share);
  try {
    await eachPiece(body, dir, (piece) => stager.take(piece), signal);
    stager.finish();
  } catch (error) {
    await stager.abandon();
    // a write the engine broke off: its own verdict says why
    if (!(error instanceof StrataError) && stager.engineBroke) throw engineError(await loader.done!.then(() => error, (failure: unknown) => failure), "load images");
    // A load that has its whole tar is not cut: its verdict says what it loaded, for the undo.
    if (!loader.sealed) loader.input?.destroy();
    await loader.done?.catch(() => undefined);
    if (error instanceof StrataError) throw error;
    const message = (error as Error).message ?? String(error);
    if (/unexpected end|premature|end of data|truncated/i.test(message)) throw truncated(`the archive ends early: ${message}`);
    throw invalid(`the archive cannot be read: ${message}`);
  }
  const { header, inventory } = stager;
  // An archive that ended without its inventory never finished the engine's tar: abort that load.
  if (!inventory) loader.input?.destroy();
  // The engine's verdict comes after ours: a tampered layer is a digest mismatch first.
  const loadFailure = loader.done ? await loader.done.then(() => null, (error: unknown) => error) : null;
  if (!header) throw truncated("the archive holds no header");
  if (!inventory) throw truncated(`the archive ends before its ${inventoryName}`);
  checkInventory(inventory, stager.members);
  for (const declared of header.snapshots) {
    const entry = stager.manifests.get(declared.id);
    if (!entry) throw invalid(`the manifest of snapshot ${declared.id} is missing`);
    const blob = entry.manifest.content.blobDigest;
    if (blob && !stager.members.has(`blobs/sha256/${blob.slice("sha256:".length)}`)) throw invalid(`the blob ${blob} of snapshot ${declared.id} is missing`);
    const image = entry.manifest.content.imageId;
    if (image && !header.images.includes(image)) throw invalid(`the image ${image} of snapshot ${declared.id} is not in the archive`);
  }
  if (loadFailure) throw engineError(loadFailure, "load images");
  await checkImageContent(ctx, stager.saveIndex ?? [], stager.members);
  return { dir, header, manifests: stager.manifests, members: stager.members };
}

/**
 * Each image is in the engine now, and its layers are the archive's own:
 * the engine skips reading a layer it already has, so the archive's layer
 * members are checked against the image's diff ids here. An image the
 * engine had before the import is adopted only when the archive holds all
 * of its content.
 */
async function checkImageContent(ctx: Context, saveIndex: SaveEntry[], members: Map<string, { size: number; sha256: string }>): Promise<void> {
  for (const entry of saveIndex) {
    const id = members.get(`images/${entry.Config}`)!.sha256;
    const image = await ctx.engine.inspectImage(id);
    if (!image) throw invalid(`the archive's images did not yield image ${id}`);
    const layers = entry.Layers.map((layer) => members.get(`images/${layer}`)!.sha256);
    if (layers.length !== image.layers.length || layers.some((digest, i) => digest !== image.layers[i])) {
      throw new StrataError("archive_digest_mismatch", `the layers the archive holds for image ${id} are not that image's layers`);
    }
  }
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
    if (s.name !== undefined && (typeof s.name !== "string" || !isName(s.name))) throw invalid(`${headerName} has an invalid name`);
  }
  for (const image of header.images) if (typeof image !== "string" || !/^sha256:[0-9a-f]{64}$/.test(image)) throw invalid(`${headerName} has a malformed image id`);
  const twice = (values: string[]) => values.find((value, i) => values.indexOf(value) !== i);
  const repeated = twice(header.snapshots.map((s) => s.id)) ?? twice(header.snapshots.flatMap((s) => (s.name ? [s.name] : []))) ?? twice(header.images);
  if (repeated !== undefined) throw invalid(`${headerName} names '${repeated}' twice`);
  return header;
}

function parseInventory(bytes: Buffer): InventoryEntry[] {
  try {
    const parsed = JSON.parse(bytes.toString("utf8")) as { members: InventoryEntry[] };
    if (!Array.isArray(parsed.members)) throw new Error("no members");
    const paths = new Set<string>();
    for (const entry of parsed.members) {
      if (!entry || typeof entry.path !== "string") throw new Error("an entry has no path");
      if (paths.has(entry.path)) throw new Error(`'${entry.path}' is listed twice`);
      paths.add(entry.path);
    }
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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const undo: (() => Promise<void> | void)[] = [];
  const share = ctx.staging.share();
  const loader: Loader = { present: new Set(), missing: [], loaded: [] };
  try {
    undo.push(() => undoLoad(ctx, loader));
    const staged = await stage(ctx, body, dir, loader, share, signal);
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
    share.release();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Removes what the engine's load of a refused import brought, once the
 * engine has given its verdict: every image it reported loading, and any
 * header image that was missing before and is there now, except images the
 * engine had before the import and images something has tagged meanwhile.
 */
async function undoLoad(ctx: Context, loader: Loader): Promise<void> {
  if (!loader.done) return;
  await loader.done.catch(() => undefined);
  const ids = new Set<string>();
  for (const ref of loader.loaded) {
    const image = await ctx.engine.inspectImage(ref);
    if (image) ids.add(image.id);
  }
  for (const id of loader.missing) if (await ctx.engine.inspectImage(id)) ids.add(id);
  for (const id of ids) {
    if (loader.present.has(id)) continue;
    // Loads leave images untagged and this import's own tags are gone by now: a tag means another import or snapshot took the image meanwhile.
    const image = await ctx.engine.inspectImage(id);
    if (image && !image.repoTags.length) await ctx.engine.removeImage(id, false).catch(() => undefined);
  }
}

