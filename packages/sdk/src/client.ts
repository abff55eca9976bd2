// The entry point of the SDK: `new Strata({ baseUrl, apiKey })`.
import type { CreateSandboxRequest, GcReport, Sandbox as SandboxInfo, SandboxList, SandboxStatus } from "@strata/contract";
import { Snapshots } from "./snapshot.js";
import { Http, type CallOptions, type ClientOptions } from "./http.js";
import { Sandbox } from "./sandbox.js";

/** Filters for `sandboxes.list()`. */
export interface ListSandboxesOptions extends CallOptions {
  /** Only sandboxes in this state (as the server last read it from the engine). */
  status?: SandboxStatus;
  /** Only sandboxes carrying all these labels. */
  labels?: Record<string, string>;
}

/** Creating, finding and listing sandboxes. */
export class Sandboxes {
  constructor(private readonly http: Http) {}

  /**
   * Creates and starts a sandbox and resolves once it is running, with its
   * record (`info`: id, name, status, image, isolation, resources, labels,
   * `expiresAt`). The source is one of: `image` (a reference the engine already
   * has; images are never pulled), `snapshotId` (a ready snapshot's id, name or
   * digest) or `imageUri` (a snapshot pushed to a registry: the server pulls it
   * with its own registry credentials and starts from it). `timeoutSeconds`
   * sets when the server removes it (`expiresAt`). With `idempotencyKey`, a
   * retry of the same request returns the first sandbox.
   *
   * Throws `StrataError`: `bad_request` (invalid fields), `image_not_found`,
   * `snapshot_not_found`, `snapshot_not_ready`, `sandbox_name_taken`,
   * `idempotency_conflict` (the key was used with another request),
   * `memory_snapshot_requires_gvisor`, `registry_unavailable` /
   * `registry_denied` (imageUri), `engine_unavailable`.
   */
  async create(request: CreateSandboxRequest, options: CallOptions & { idempotencyKey?: string } = {}): Promise<Sandbox> {
    const info = await this.http.json<SandboxInfo>({
      method: "POST", path: "/v1/sandboxes", json: request, signal: options.signal,
      headers: options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : undefined,
    });
    return new Sandbox(this.http, info);
  }

  /** A sandbox by id or name; `sandbox_not_found` when there is none. */
  async get(idOrName: string, options: CallOptions = {}): Promise<Sandbox> {
    const info = await this.http.json<SandboxInfo>({ method: "GET", path: `/v1/sandboxes/${encodeURIComponent(idOrName)}`, signal: options.signal });
    return new Sandbox(this.http, info);
  }

  /** Sandboxes of this server, newest first, filtered by status and labels. */
  async list(options: ListSandboxesOptions = {}): Promise<Sandbox[]> {
    const label = Object.entries(options.labels ?? {}).map(([key, value]) => `${key}=${value}`);
    const reply = await this.http.json<SandboxList>({
      method: "GET", path: "/v1/sandboxes", query: { status: options.status, label }, signal: options.signal,
    });
    return reply.sandboxes.map((info) => new Sandbox(this.http, info));
  }
}

/**
 * A client of one Strata server: `new Strata({ baseUrl: "http://127.0.0.1:7070",
 * apiKey })`. Every call throws `StrataError` (a code from the contract's
 * closed list, with its HTTP status) when the server refuses, and the
 * platform's error (`TypeError`, `AbortError`) when the server cannot be
 * reached or the call's `signal` aborts it.
 */
export class Strata {
  /** Creating, finding and listing sandboxes. */
  readonly sandboxes: Sandboxes;
  /** Finding, restoring, verifying, exporting, importing and pushing snapshots, and builds. */
  readonly snapshots: Snapshots;
  private readonly http: Http;

  /** Holds the options; nothing is sent until the first call. */
  constructor(options: ClientOptions) {
    this.http = new Http(options);
    this.sandboxes = new Sandboxes(this.http);
    this.snapshots = new Snapshots(this.http);
  }

  /**
   * Removes this server's engine images, blobs and staging files that no
   * snapshot owns (never another server's), and reports what went:
   * `removedImages` and `removedBlobs` (each with `sizeBytes`),
   * `removedTempFiles` (a count) and `freedBytes` (their sum in bytes).
   */
  async gc(options: CallOptions = {}): Promise<GcReport> {
    return this.http.json<GcReport>({ method: "POST", path: "/v1/gc", signal: options.signal });
  }

  /**
   * Whether the server and its engine answer: `ok`, the server's `version` and
   * the engine's version string. Throws `engine_unavailable` when the engine
   * does not answer.
   */
  async health(options: CallOptions = {}): Promise<{ ok: boolean; version: string; engine: string }> {
    return this.http.json({ method: "GET", path: "/v1/health", signal: options.signal });
  }
}
