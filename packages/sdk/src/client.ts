// The entry point of the SDK: `new Strata({ baseUrl, apiKey })`.
import type { CreateSandboxRequest, GcReport, Sandbox as SandboxInfo, SandboxList, SandboxStatus } from "@strata/contract";
import { Snapshots } from "./snapshot.js";
import { Http, type CallOptions, type ClientOptions } from "./http.js";
import { Sandbox } from "./sandbox.js";

export interface ListSandboxesOptions extends CallOptions {
  status?: SandboxStatus;
  /** Only sandboxes carrying all these labels. */
  labels?: Record<string, string>;
}

/** Creating, finding and listing sandboxes. */
export class Sandboxes {
  constructor(private readonly http: Http) {}

  /**
   * Creates and starts a sandbox from an image or a ready snapshot
   * (`snapshotId`: id, name or digest); resolves once it is running.
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

  /** Sandboxes of this server, newest first. */
  async list(options: ListSandboxesOptions = {}): Promise<Sandbox[]> {
    const label = Object.entries(options.labels ?? {}).map(([key, value]) => `${key}=${value}`);
    const reply = await this.http.json<SandboxList>({
      method: "GET", path: "/v1/sandboxes", query: { status: options.status, label }, signal: options.signal,
    });
    return reply.sandboxes.map((info) => new Sandbox(this.http, info));
  }
}

/** A client of one Strata server. */
export class Strata {
  readonly sandboxes: Sandboxes;
  readonly snapshots: Snapshots;
  private readonly http: Http;

  constructor(options: ClientOptions) {
    this.http = new Http(options);
    this.sandboxes = new Sandboxes(this.http);
    this.snapshots = new Snapshots(this.http);
  }

  /** Removes engine images and files that no snapshot owns; reports what was freed. */
  async gc(options: CallOptions = {}): Promise<GcReport> {
    return this.http.json<GcReport>({ method: "POST", path: "/v1/gc", signal: options.signal });
  }

  /** Whether the server and its engine answer. */
  async health(options: CallOptions = {}): Promise<{ ok: boolean; version: string; engine: string }> {
    return this.http.json({ method: "GET", path: "/v1/health", signal: options.signal });
  }
}
