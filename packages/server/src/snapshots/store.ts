// The snapshot store under the home: `snapshots/<id>/manifest.json` (the
// immutable, digested record) and `snapshots/<id>/record.json` (its mutable
// state: name, status, error). The artifacts here are the truth; the index
// is a cache rebuilt from them.
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Snapshot } from "@strata/contract";
import { fsyncDirectory, tempSuffix, writeFileDurable } from "../store/durable.js";
import { manifestBytes, parseManifest, sha256, type ManifestV1 } from "./manifest.js";

const idPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface StoreScan {
  snapshots: Snapshot[];
  malformed: { id: string; reason: string }[];
}

/** The API record of a ready snapshot, from its manifest and mutable state. */
export function readyRecord(manifest: ManifestV1, digest: string, state: Partial<Snapshot>): Snapshot {
  return {
    id: manifest.id,
    digest,
    kind: manifest.kind,
    ...(state.name ? { name: state.name } : {}),
    status: state.status === "deleting" ? "deleting" : "ready",
    sandboxId: manifest.sandboxId,
    ...(manifest.parent ? { parent: manifest.parent.id } : {}),
    ...(manifest.parent?.digest ? { parentDigest: manifest.parent.digest } : {}),
    labels: manifest.labels,
    sizeBytes: manifest.content.sizeBytes,
    ...(manifest.content.imageSizeBytes !== undefined ? { imageSizeBytes: manifest.content.imageSizeBytes } : {}),
    ...(manifest.content.imageId ? { imageId: manifest.content.imageId, imageUri: state.imageUri ?? manifest.content.imageId } : {}),
    ...(!manifest.content.imageId && state.imageUri ? { imageUri: state.imageUri } : {}),
    ...(manifest.origin ? { origin: manifest.origin } : {}),
    ...(manifest.content.path ? { path: manifest.content.path } : {}),
    ...(manifest.content.exclude?.length ? { exclude: manifest.content.exclude } : {}),
    ...(manifest.content.blobDigest ? { contentDigest: manifest.content.blobDigest } : {}),
    ...(manifest.content.fileCount !== undefined ? { fileCount: manifest.content.fileCount } : {}),
    ...(manifest.content.blobSizeBytes !== undefined ? { checkpointBytes: manifest.content.blobSizeBytes } : {}),
    ...(state.storedBytes !== undefined ? { storedBytes: state.storedBytes } : {}),
    baseImage: manifest.baseImage,
    ...(manifest.settings ? { settings: manifest.settings } : {}),
    createdAt: manifest.createdAt,
    ...(state.readyAt ? { readyAt: state.readyAt } : {}),
  };
}

export class SnapshotStore {
  readonly root: string;
  private readonly trash: string;

  constructor(home: string) {
    this.root = join(home, "snapshots");
    this.trash = join(home, "trash");
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.trash, { recursive: true });
  }

  private dir(id: string): string {
    if (!idPattern.test(id)) throw new Error(`not a snapshot id: ${id}`);
    return join(this.root, id);
  }

  /** The snapshot's directory, made (durably) when missing. */
  private ensureDir(id: string): string {
    const dir = this.dir(id);
    if (!existsSync(dir)) {
      mkdirSync(dir);
      fsyncDirectory(this.root);
    }
    return dir;
  }

  /** Writes the mutable state of a snapshot. */
  writeRecord(record: Snapshot): void {
    writeFileDurable(join(this.ensureDir(record.id), "record.json"), `${JSON.stringify(record, null, 2)}\n`);
  }

  /** Writes the manifest and returns its digest. */
  writeManifest(manifest: ManifestV1): string {
    const bytes = manifestBytes(manifest);
    writeFileDurable(join(this.ensureDir(manifest.id), "manifest.json"), bytes);
    return sha256(bytes);
  }

  /** Writes manifest bytes exactly as given (an import); returns their digest. */
  writeManifestBytes(id: string, bytes: Buffer): string {
    writeFileDurable(join(this.ensureDir(id), "manifest.json"), bytes);
    return sha256(bytes);
  }

  exists(id: string): boolean {
    return existsSync(this.dir(id));
  }

  /** Removes a snapshot's directory: renamed away first, so it vanishes at once. */
  remove(id: string): void {
    const dir = this.dir(id);
    if (!existsSync(dir)) return;
    const away = join(this.trash, `${id}-${randomUUID()}`);
    renameSync(dir, away);
    fsyncDirectory(this.root);
    rmSync(away, { recursive: true, force: true });
  }

  /** Every snapshot on disk; digests recomputed from the manifest bytes. */
  scan(): StoreScan {
    const out: StoreScan = { snapshots: [], malformed: [] };
    for (const id of readdirSync(this.root)) {
      if (!idPattern.test(id)) continue;
      const dir = join(this.root, id);
      let state: Partial<Snapshot> = {};
      try {
        state = JSON.parse(readFileSync(join(dir, "record.json"), "utf8")) as Partial<Snapshot>;
      } catch {
        // no record or a torn one: the manifest alone decides
      }
      let manifestText: string | undefined;
      try {
        manifestText = readFileSync(join(dir, "manifest.json"), "utf8");
      } catch {
        manifestText = undefined;
      }
      if (manifestText !== undefined) {
        try {
          const manifest = parseManifest(manifestText);
          if (manifest.id !== id) throw new Error("manifest id differs from its directory");
          out.snapshots.push(readyRecord(manifest, sha256(manifestText), state));
        } catch (error) {
          out.malformed.push({ id, reason: (error as Error).message });
        }
        continue;
      }
      if (state.id === id && state.status && state.status !== "ready" && state.sandboxId && state.baseImage && state.createdAt) {
        out.snapshots.push(state as Snapshot);
      } else {
        out.malformed.push({ id, reason: state.status === "ready" ? "ready but its manifest is missing" : "no manifest and no readable record" });
      }
    }
    return out;
  }

  /**
   * Removes snapshot directories that hold nothing: what a crash leaves
   * between making a snapshot's directory and renaming its first record in.
   * Only for startup, before anything writes: a capture running now may have
   * made its directory and not yet written to it. Returns the ids removed.
   */
  removeEmptyDirs(): string[] {
    const removed: string[] = [];
    for (const id of readdirSync(this.root)) {
      if (!idPattern.test(id)) continue;
      const dir = join(this.root, id);
      try {
        if (readdirSync(dir).length) continue;
        rmdirSync(dir);
        removed.push(id);
      } catch {
        // not a directory, or gone
      }
    }
    if (removed.length) fsyncDirectory(this.root);
    return removed;
  }

  /** Removes temp files a crash left and emptied trash; returns how many. */
  cleanTemp(): number {
    let removed = 0;
    for (const entry of readdirSync(this.trash)) {
      rmSync(join(this.trash, entry), { recursive: true, force: true });
      removed++;
    }
    for (const id of readdirSync(this.root)) {
      const dir = join(this.root, id);
      try {
        for (const file of readdirSync(dir)) {
          if (file.endsWith(tempSuffix)) {
            rmSync(join(dir, file), { force: true });
            removed++;
          }
        }
      } catch {
        // not a directory
      }
    }
    return removed;
  }
}
