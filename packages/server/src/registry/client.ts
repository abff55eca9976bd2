// A small client of the OCI distribution API, for what the engine cannot do:
// pushing and pulling directory snapshots as single-layer artifacts, reading
// manifests to tell kinds apart. Handles Basic and Bearer token auth.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { StrataError } from "@strata/contract";
import type { RegistryConfig } from "./config.js";

export interface Manifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  json: {
    mediaType?: string;
    config?: { mediaType: string; digest: string; size: number };
    layers?: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
    annotations?: Record<string, string>;
  };
}

export const manifestTypes = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
];

export class RegistryClient {
  private readonly base: string;
  private token: string | undefined;

  constructor(readonly config: RegistryConfig) {
    this.base = `${config.insecure ? "http" : "https"}://${config.host}`;
  }

  private basic(): string | undefined {
    if (!this.config.username) return undefined;
    return `Basic ${Buffer.from(`${this.config.username}:${this.config.password ?? ""}`).toString("base64")}`;
  }

  /** Sends a request, answering an auth challenge once. */
  async request(method: string, path: string, init: { headers?: Record<string, string>; body?: unknown; scope?: string } = {}): Promise<Response> {
    const send = async () => {
      const headers: Record<string, string> = { ...init.headers };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      else if (this.basic()) headers.authorization = this.basic()!;
      const options: RequestInit & { duplex?: "half" } = { method, headers, body: init.body as never, redirect: "follow" };
      if (init.body instanceof ReadableStream) options.duplex = "half";
      try {
        return await fetch(`${path.startsWith("http") ? "" : this.base}${path}`, options);
      } catch (error) {
        throw new StrataError("registry_unavailable", `the registry ${this.config.host} does not answer: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`);
      }
    };
    let response = await send();
    if (response.status === 401 && !(init.body instanceof ReadableStream)) {
      const challenge = response.headers.get("www-authenticate") ?? "";
      await response.body?.cancel();
      if (/^Bearer /i.test(challenge)) await this.fetchToken(challenge, init.scope);
      else if (!this.basic()) throw new StrataError("registry_denied", `the registry ${this.config.host} requires credentials`);
      response = await send();
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new StrataError("registry_denied", `the registry ${this.config.host} refused the credentials (${response.status})`);
    }
    return response;
  }

  private async fetchToken(challenge: string, scope?: string): Promise<void> {
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (!params.realm) throw new StrataError("registry_denied", "the registry's auth challenge has no realm");
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    if (scope ?? params.scope) url.searchParams.set("scope", (scope ?? params.scope)!);
    const response = await fetch(url, { headers: this.basic() ? { authorization: this.basic()! } : {} }).catch((error: Error) => {
      throw new StrataError("registry_unavailable", `the registry's token service does not answer: ${error.message}`);
    });
    if (!response.ok) throw new StrataError("registry_denied", `the registry's token service refused (${response.status})`);
    const body = (await response.json()) as { token?: string; access_token?: string };
    this.token = body.token ?? body.access_token;
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const response = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull,push` });
    return response.ok;
  }

  /** Uploads a blob in one request (monolithic), streaming its bytes. */
  async pushBlob(repo: string, digest: string, size: number, body: () => Readable | Buffer): Promise<void> {
    if (await this.hasBlob(repo, digest)) return;
    const start = await this.request("POST", `/v2/${repo}/blobs/uploads/`, { scope: `repository:${repo}:pull,push` });
    await start.body?.cancel();
    if (start.status !== 202) throw new StrataError("registry_unavailable", `the registry refused an upload (${start.status})`);
    const location = new URL(start.headers.get("location")!, this.base);
    location.searchParams.set("digest", digest);
    const source = body();
    const payload = Buffer.isBuffer(source) ? source : (Readable.toWeb(source) as unknown as ReadableStream);
    const put = await this.request("PUT", location.toString(), {
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body: payload,
    });
    const text = await put.text();
    if (put.status !== 201) throw new StrataError("registry_unavailable", `the registry refused blob ${digest} (${put.status}): ${text.slice(0, 200)}`);
  }

  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const response = await this.request("PUT", `/v2/${repo}/manifests/${reference}`, {
      headers: { "content-type": mediaType }, body: bytes, scope: `repository:${repo}:pull,push`,
    });
    const text = await response.text();
    if (response.status !== 201) throw new StrataError("registry_unavailable", `the registry refused the manifest (${response.status}): ${text.slice(0, 200)}`);
    return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  }

  /** A manifest by digest; its bytes are checked against the digest. */
  async getManifest(repo: string, digest: string): Promise<Manifest> {
    const response = await this.request("GET", `/v2/${repo}/manifests/${digest}`, {
      headers: { accept: manifestTypes.join(", ") }, scope: `repository:${repo}:pull`,
    });
    if (response.status === 404) {
      await response.body?.cancel();
      throw new StrataError("image_not_found", `the registry has no manifest ${repo}@${digest}`);
    }
    if (!response.ok) throw new StrataError("registry_unavailable", `the registry answered ${response.status} for ${repo}@${digest}`);
    const bytes = Buffer.from(await response.arrayBuffer());
    const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (actual !== digest) throw new StrataError("blob_corrupt", `the registry's manifest for ${digest} has digest ${actual}`);
    const json = JSON.parse(bytes.toString("utf8")) as Manifest["json"];
    return { bytes, digest, mediaType: json.mediaType ?? response.headers.get("content-type") ?? "", json };
  }

  async getBlob(repo: string, digest: string): Promise<Readable> {
    const response = await this.request("GET", `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull` });
    if (response.status === 404) throw new StrataError("image_not_found", `the registry has no blob ${digest} in ${repo}`);
    if (!response.ok || !response.body) throw new StrataError("registry_unavailable", `the registry answered ${response.status} for blob ${digest}`);
    return Readable.fromWeb(response.body as never);
  }

  /** The header for the engine's push and pull (X-Registry-Auth): URL-safe base64 with padding, as the engine decodes it. */
  engineAuth(): string {
    return Buffer.from(
      JSON.stringify({ username: this.config.username ?? "", password: this.config.password ?? "", serveraddress: this.config.host }),
    ).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
  }
}
