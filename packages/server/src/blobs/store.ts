// Content-addressed blobs under the home: `blobs/sha256/<hex>` holds the
// zstd-compressed form of content whose sha256 (of the uncompressed bytes)
// is <hex>. Written through a temp file, fsynced and renamed; identical
// content is stored once. Reading checks the digest as the bytes stream.
import { createHash, randomUUID } from "node:crypto";
import { closeSync, existsSync, openSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError } from "@strata/contract";
import { fsyncDirectory } from "../store/durable.js";
import { TarCounter } from "./tar-scan.js";
import { compressToFile, decompressFromFile } from "./zstd.js";

const digestPattern = /^sha256:([0-9a-f]{64})$/;

export interface StoredBlob {
  digest: string;
  /** Uncompressed bytes. */
  sizeBytes: number;
  /** Bytes on disk. */
  storedBytes: number;
  fileCount: number;
  /** False when identical content was already stored. */
  created: boolean;
}

export interface WriteOptions {
  /** Fail with snapshot_too_large past this many uncompressed bytes. */
  limitBytes?: number;
  signal?: AbortSignal;
}

export class BlobStore {
  readonly root: string;
  private readonly temp: string;
  /** Temp files being written now, which cleanTemp leaves alone. */
  private readonly active = new Set<string>();
  /** Blobs just written whose record is not written yet; gc leaves them alone. */
  private readonly pinned = new Map<string, number>();

  constructor(home: string) {
    this.root = join(home, "blobs", "sha256");
    this.temp = join(home, "blobs", "tmp");
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.temp, { recursive: true });
  }

  path(digest: string): string {
    const match = digestPattern.exec(digest);
    if (!match) throw new StrataError("bad_request", `not a sha256 digest: ${digest}`);
    return join(this.root, match[1]!);
  }

  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  storedSize(digest: string): number {
    return statSync(this.path(digest)).size;
  }

  /**
   * Stores a tar stream: hashes and counts it as it passes, compresses it to
   * a temp file, then renames it into place under its digest.
   */
  async writeTar(source: Readable, options: WriteOptions = {}): Promise<StoredBlob> {
    const temp = join(this.temp, `${randomUUID()}.zst`);
    this.active.add(temp);
    const hash = createHash("sha256");
    const counter = new TarCounter();
    let size = 0;
    const limit = options.limitBytes ?? Infinity;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > limit) return done(new StrataError("snapshot_too_large", `the directory is larger than the limit of ${limit} bytes`));
        hash.update(chunk);
        try {
          counter.push(chunk);
        } catch (error) {
          return done(new StrataError("bad_request", `the archive cannot be read: ${(error as Error).message}`));
        }
        done(null, chunk);
      },
    });
    const file = await open(temp, "wx", 0o600);
    const zstd = compressToFile(file.fd);
    try {
      await Promise.all([pipeline(source, meter, zstd.input, { signal: options.signal }), zstd.done]);
      await file.sync();
      await file.close();
      const digest = `sha256:${hash.digest("hex")}`;
      const target = this.path(digest);
      this.pin(digest);
      const created = !existsSync(target);
      if (created) {
        renameSync(temp, target);
        fsyncDirectory(this.root);
      } else rmSync(temp, { force: true });
      return { digest, sizeBytes: size, storedBytes: statSync(target).size, fileCount: counter.files, created };
    } catch (error) {
      source.destroy();
      zstd.stop();
      await zstd.done.catch(() => undefined);
      await file.close().catch(() => undefined);
      rmSync(temp, { force: true });
      throw error;
    } finally {
      this.active.delete(temp);
    }
  }

  /**
   * The uncompressed content as a stream. The digest is checked as it flows;
   * a mismatch fails the stream at its end with blob_corrupt, so a consumer
   * that waits for the end never accepts corrupt content silently.
   */
  read(digest: string): Readable {
    const path = this.path(digest);
    if (!existsSync(path)) throw new StrataError("blob_corrupt", `blob ${digest} is missing from the store`);
    // A generator starts on the first read: nothing runs, and nothing can fail
    // unheard, before the stream has a consumer.
    return Readable.from(checkedContent(path, digest), { objectMode: false });
  }

  /** Recomputes the digest of a stored blob; returns the actual digest or an error message. */
  async verify(digest: string): Promise<{ ok: boolean; actual?: string; message?: string }> {
    try {
      const stream = this.read(digest);
      for await (const _chunk of stream) {
        // reading is the check
      }
      return { ok: true, actual: digest };
    } catch (error) {
      return { ok: false, message: (error as Error).message };
    }
  }

  pin(digest: string): void {
    this.pinned.set(digest, (this.pinned.get(digest) ?? 0) + 1);
  }

  /** Called once the record that owns a written blob is durable. */
  unpin(digest: string): void {
    const count = (this.pinned.get(digest) ?? 1) - 1;
    if (count <= 0) this.pinned.delete(digest);
    else this.pinned.set(digest, count);
  }

  isPinned(digest: string): boolean {
    return this.pinned.has(digest);
  }

  remove(digest: string): void {
    rmSync(this.path(digest), { force: true });
  }

  /** Every stored digest with its size on disk. */
  list(): { digest: string; storedBytes: number }[] {
    return readdirSync(this.root)
      .filter((name) => /^[0-9a-f]{64}$/.test(name))
      .map((name) => ({ digest: `sha256:${name}`, storedBytes: statSync(join(this.root, name)).size }));
  }

  /** Removes temp files a crash or an abort left (not those being written); returns how many. */
  cleanTemp(): number {
    let removed = 0;
    for (const name of readdirSync(this.temp)) {
      const path = join(this.temp, name);
      if (this.active.has(path)) continue;
      rmSync(path, { force: true });
      removed++;
    }
    return removed;
  }
}

/**
 * The blob's uncompressed bytes, hashed as they pass. The last bytes are held
 * back until the digest is checked, so a reader (such as tar extracting) never
 * sees the end of a corrupt blob: it fails with blob_corrupt instead.
 */
async function* checkedContent(path: string, digest: string): AsyncGenerator<Buffer> {
  const cannotRead = (error: unknown) =>
    error instanceof StrataError ? error : new StrataError("blob_corrupt", `blob ${digest} cannot be read: ${(error as Error).message}`);
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw cannotRead(error);
  }
  const decompress = decompressFromFile(fd);
  closeSync(fd); // zstd has its own copy
  const hash = createHash("sha256");
  const holdBack = 64 * 1024;
  const held: Buffer[] = [];
  let heldBytes = 0;
  try {
    for await (const chunk of decompress as AsyncIterable<Buffer>) {
      hash.update(chunk);
      held.push(chunk);
      heldBytes += chunk.length;
      while (held.length > 1 && heldBytes - held[0]!.length >= holdBack) {
        heldBytes -= held[0]!.length;
        yield held.shift()!;
      }
    }
  } catch (error) {
    throw cannotRead(error);
  }
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== digest) throw new StrataError("blob_corrupt", `blob ${digest} does not match its content (got ${actual})`);
  yield* held;
}
