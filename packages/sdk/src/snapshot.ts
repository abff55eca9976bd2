// A snapshot as SDK users hold it: its last known state plus the operations on it.
import {
  StrataError, type ImportResult, type ReindexReport, type Snapshot as SnapshotInfo, type SnapshotList, type SnapshotKind,
  type SnapshotStatus, type VerifyReport, type PushEvent,
} from "@strata/contract";
import { open, rename, rm } from "node:fs/promises";
import type { CallOptions, Http, RequestSpec, Upload } from "./http.js";
import { runBuild, type BuildOptions } from "./build.js";
import { jsonLines } from "./lines.js";

export interface WaitOptions extends CallOptions {
  /** Called each time the server reports the snapshot's state while waiting. */
  onProgress?: (snapshot: SnapshotInfo, elapsedMs: number) => void;
  /**
   * Give up after this many milliseconds, rejecting with `snapshot_not_ready`
   * (the snapshot itself carries on). Default {@link defaultWaitTimeoutMs}
   * (10 minutes); `Infinity` waits as long as it takes.
   */
  timeoutMs?: number;
}

/** How long `waitUntilReady()` waits when no `timeoutMs` is given: 10 minutes. */
export const defaultWaitTimeoutMs = 10 * 60 * 1000;

/** Filters and paging for `snapshots.list()`. */
export interface ListSnapshotsOptions extends CallOptions {
  /** Only snapshots of this kind: container, directory or memory. */
  kind?: SnapshotKind;
  /** Only snapshots in this state. */
  status?: SnapshotStatus;
  /** Only snapshots captured from this sandbox (its id). */
  sandboxId?: string;
  /** Only snapshots carrying all these labels. */
  labels?: Record<string, string>;
  /** Page size (default 100). */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

/** What `delete()` takes. */
export interface DeleteSnapshotOptions extends CallOptions {
  /** Delete even while it has children or is still being created. */
  force?: boolean;
}

/**
 * A snapshot: its record as last read (`info`: id, kind, status, digest,
 * parent, sizes, imageUri, labels) and the operations on it. Every method
 * throws `StrataError`; `snapshot_not_found` when it was deleted.
 */
export class Snapshot {
  /** The state as of the last call that returned it. */
  info: SnapshotInfo;

  /** Made by the SDK from a reply; `info` is the server's record. */
  constructor(private readonly http: Http, info: SnapshotInfo) {
    this.info = info;
  }

  /** The snapshot's id (a UUID chosen by the server). */
  get id(): string {
    return this.info.id;
  }

  /** The status in `info` (creating, ready, failed, deleting) as of the last call. */
  get status(): SnapshotStatus {
    return this.info.status;
  }

  /** Reads the snapshot's state again. */
  async refresh(options: CallOptions = {}): Promise<SnapshotInfo> {
    this.info = await this.http.json<SnapshotInfo>({ method: "GET", path: `/v1/snapshots/${this.id}`, signal: options.signal });
    return this.info;
  }

  /**
   * Resolves once the snapshot is ready; rejects with its error when it
   * fails, with `snapshot_not_found` when it is being deleted, and with
   * `snapshot_not_ready` when it is still creating after `timeoutMs`
   * (default 10 minutes; pass `Infinity` to wait as long as it takes). Waits
   * on the server (long poll), so readiness is seen at once.
   */
  async waitUntilReady(options: WaitOptions = {}): Promise<this> {
    const started = Date.now();
    const timeoutMs = options.timeoutMs ?? defaultWaitTimeoutMs;
    for (;;) {
      if (this.info.status === "ready") return this;
      if (this.info.status === "failed") {
        const error = this.info.error;
        throw StrataError.fromBody({ error: { code: error?.code ?? "internal", message: `snapshot ${this.id} failed: ${error?.message ?? "unknown"}` } }, 500);
      }
      if (this.info.status === "deleting") throw new StrataError("snapshot_not_found", `snapshot ${this.id} is being deleted`);
      const left = timeoutMs - (Date.now() - started);
      if (left <= 0) throw new StrataError("snapshot_not_ready", `snapshot ${this.id} is still ${this.info.status} after ${timeoutMs} ms`);
      this.info = await this.http.json<SnapshotInfo>({
        method: "GET", path: `/v1/snapshots/${this.id}`, query: { waitSeconds: Math.max(1, Math.min(30, Math.ceil(left / 1000))) }, signal: options.signal,
      });
      options.onProgress?.(this.info, Date.now() - started);
    }
  }

  /**
   * Recomputes the snapshot's digests on the server (manifest, image, blobs)
   * and reports each part (`VerifyReport`: `ok` and one entry per part with
   * what was expected and found). Throws `snapshot_not_ready` while creating.
   */
  async verify(options: CallOptions = {}): Promise<VerifyReport> {
    return this.http.json<VerifyReport>({ method: "POST", path: `/v1/snapshots/${this.id}/verify`, signal: options.signal });
  }

  /**
   * Streams an archive of the snapshot (docs/archive-format.md): `.tar.zst`
   * unless `compression: "none"`. `onProgress` gets the bytes received so far.
   * Throws `snapshot_not_ready`; an archive cut off midway errors the stream.
   */
  async export(options: ExportOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.http.send(this.exportRequest(options));
    return counting(response.body!, options.onProgress);
  }

  /**
   * Writes the archive (see `export`) to a file: into `FILE.partial` first,
   * renamed once whole, removed if the export fails or is cancelled.
   */
  async exportToFile(file: string, options: ExportOptions = {}): Promise<{ bytes: number }> {
    const temp = `${file}.partial`;
    let bytes = 0;
    const out = await open(temp, "w");
    try {
      await this.http.receive(this.exportRequest(options), async (pieces) => {
        for (let written = 0, total = pieces.reduce((sum, piece) => sum + piece.length, 0); written < total;) {
          const { bytesWritten } = await out.writev(written ? [Buffer.concat(pieces).subarray(written)] : pieces);
          written += bytesWritten;
          bytes += bytesWritten;
        }
        options.onProgress?.(bytes);
      });
      await out.close();
      await rename(temp, file);
    } catch (error) {
      await out.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    return { bytes };
  }

  private exportRequest(options: ExportOptions): RequestSpec {
    return {
      method: "GET", path: `/v1/snapshots/${this.id}/export`,
      query: { withParents: options.withParents || undefined, withImage: options.withImage || undefined, compression: options.compression },
      signal: options.signal,
    };
  }

  /**
   * Pushes the snapshot to the server's registry; resolves with `imageUri`
   * pinned by digest. `onProgress` receives the engine's progress messages.
   */
  async push(options: PushOptions = {}): Promise<this> {
    const json = options.repository ? { repository: options.repository } : {};
    if (!options.onProgress) {
      this.info = await this.http.json<SnapshotInfo>({ method: "POST", path: `/v1/snapshots/${this.id}/push`, json, signal: options.signal });
      return this;
    }
    const response = await this.http.send({
      method: "POST", path: `/v1/snapshots/${this.id}/push`, json, signal: options.signal, headers: { accept: "application/x-ndjson" },
    });
    let result: SnapshotInfo | undefined;
    for await (const event of jsonLines<PushEvent>(response.body!)) {
      if (event.type === "progress") options.onProgress?.(event);
      else if (event.type === "done") result = event.snapshot;
      else throw StrataError.fromBody({ error: { code: event.code, message: event.message } }, 500);
    }
    if (!result) throw new StrataError("internal", "the push stream ended without a result");
    this.info = result;
    return this;
  }

  /**
   * Deletes the snapshot: its record, manifest, blobs, and its engine image
   * when nothing else uses it. Throws `snapshot_has_children` while snapshots
   * taken from sandboxes restored from it exist, `snapshot_creating` while it
   * is being made (unless `force`).
   */
  async delete(options: DeleteSnapshotOptions = {}): Promise<void> {
    await this.http.json<void>({ method: "DELETE", path: `/v1/snapshots/${this.id}`, query: { force: options.force || undefined }, signal: options.signal });
  }
}

/** What `export()` and `exportToFile()` take. */
export interface ExportOptions extends CallOptions {
  /** Include the snapshot's ancestors, so the archive imports on a server that has none of them. */
  withParents?: boolean;
  /** Include the base image's layers (always included in this version; see docs/archive-format.md). */
  withImage?: boolean;
  /** zstd (default) or none (a plain tar). */
  compression?: "zstd" | "none";
  /** Called with the bytes received so far. */
  onProgress?: (bytes: number) => void;
}

/** What `push()` takes. */
export interface PushOptions extends CallOptions {
  /** Repository under the registry's namespace (default strata-snapshots). */
  repository?: string;
  /** Called with each of the engine's progress messages (layer, status, bytes). */
  onProgress?: (event: Extract<PushEvent, { type: "progress" }>) => void;
}

/** What `import()` and `importFile()` take. */
export interface ImportOptions extends CallOptions {
  /** Called with the bytes sent so far. */
  onProgress?: (bytes: number) => void;
}

/** Passes a stream through, reporting the running byte count. */
function counting(stream: ReadableStream<Uint8Array>, onProgress?: (bytes: number) => void): ReadableStream<Uint8Array> {
  if (!onProgress) return stream;
  let total = 0;
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        total += chunk.byteLength;
        onProgress(total);
        controller.enqueue(chunk);
      },
    }),
  );
}

/** Finding, listing, importing, building and deleting snapshots. */
export class Snapshots {
  /** Made by `Strata`. */
  constructor(private readonly http: Http) {}

  /** A snapshot by id, name or digest (`sha256:...`); throws `snapshot_not_found`. */
  async get(ref: string, options: CallOptions = {}): Promise<Snapshot> {
    const info = await this.http.json<SnapshotInfo>({ method: "GET", path: `/v1/snapshots/${encodeURIComponent(ref)}`, signal: options.signal });
    return new Snapshot(this.http, info);
  }

  /** One page of snapshots, newest first; pass `nextCursor` back as `cursor` for the next. */
  async list(options: ListSnapshotsOptions = {}): Promise<{ snapshots: Snapshot[]; nextCursor?: string }> {
    const label = Object.entries(options.labels ?? {}).map(([key, value]) => `${key}=${value}`);
    const reply = await this.http.json<SnapshotList>({
      method: "GET",
      path: "/v1/snapshots",
      query: { kind: options.kind, status: options.status, sandboxId: options.sandboxId, label, limit: options.limit, cursor: options.cursor },
      signal: options.signal,
    });
    return { snapshots: reply.snapshots.map((info) => new Snapshot(this.http, info)), ...(reply.nextCursor ? { nextCursor: reply.nextCursor } : {}) };
  }

  /**
   * Imports an archive made by `export()` (compressed or not). Snapshots that
   * already exist with the same digest are skipped; resolves to the exported
   * snapshot and the ids imported and skipped. The server recomputes every
   * digest and size; throws `archive_invalid`, `archive_truncated`,
   * `archive_digest_mismatch`, `archive_unsafe_path`, `snapshot_too_large`.
   */
  async import(
    archive: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Uint8Array, options: ImportOptions = {},
  ): Promise<{ snapshot: Snapshot; imported: string[]; skipped: string[] }> {
    const onProgress = options.onProgress;
    const body = archive instanceof Uint8Array || !onProgress ? archive : (async function* counted() {
      let total = 0;
      for await (const chunk of archive as AsyncIterable<Uint8Array>) {
        total += chunk.byteLength;
        onProgress(total);
        yield chunk;
      }
    })();
    const result = await this.importBody(body as AsyncIterable<Uint8Array> | Uint8Array, options.signal);
    if (archive instanceof Uint8Array) onProgress?.(archive.byteLength);
    return result;
  }

  /** Imports an archive file (see `import`), read into one reused 1 MiB buffer. */
  async importFile(file: string, options: ImportOptions = {}): Promise<{ snapshot: Snapshot; imported: string[]; skipped: string[] }> {
    return this.importBody({ file, ...(options.onProgress ? { onProgress: options.onProgress } : {}) }, options.signal);
  }

  private async importBody(body: Upload, signal?: AbortSignal): Promise<{ snapshot: Snapshot; imported: string[]; skipped: string[] }> {
    const reply = await this.http.transfer({ method: "POST", path: "/v1/snapshots/import", contentType: "application/octet-stream", signal }, body);
    const chunks: Buffer[] = [];
    for await (const chunk of reply) chunks.push(chunk as Buffer);
    const result = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ImportResult;
    return { snapshot: new Snapshot(this.http, result.snapshot), imported: result.imported, skipped: result.skipped };
  }

  /**
   * Builds a snapshot from a build context (a directory, packed honouring
   * .dockerignore; or a tar / tar.gz). Streams the log to `onLog`, reconnects
   * and retries transient failures, cancels the build when `signal` aborts,
   * and resolves to the ready snapshot.
   */
  async build(options: BuildOptions): Promise<Snapshot> {
    return runBuild(this.http, options);
  }

  /** Rebuilds the server's index from the manifests on disk; reports the count indexed and the malformed directories with reasons. */
  async reindex(options: CallOptions = {}): Promise<ReindexReport> {
    return this.http.json<ReindexReport>({ method: "POST", path: "/v1/snapshots/reindex", signal: options.signal });
  }

  /** Deletes a snapshot by id, name or digest; see `Snapshot.delete` for what is freed and refused. */
  async delete(ref: string, options: DeleteSnapshotOptions = {}): Promise<void> {
    await this.http.json<void>({ method: "DELETE", path: `/v1/snapshots/${encodeURIComponent(ref)}`, query: { force: options.force || undefined }, signal: options.signal });
  }
}
