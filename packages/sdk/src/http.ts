// The SDK's HTTP transport: fetch with the API key, errors rebuilt as StrataError;
// archives of gigabytes go over node:http (see `transfer`).
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError } from "@strata/contract";

export interface ClientOptions {
  /** Server URL, e.g. `http://127.0.0.1:7420`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string;
  /** A fetch implementation; the platform's by default. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Cancels the call; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export type Body = NonNullable<RequestInit["body"]>;

export type Query = Record<string, string | number | boolean | string[] | undefined>;

export interface RequestSpec extends CallOptions {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Query;
  json?: unknown;
  body?: Body;
  contentType?: string;
  headers?: Record<string, string>;
}

export class Http {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? fetch;
  }

  url(path: string, query?: Query): string {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      for (const item of Array.isArray(value) ? value : [value]) search.append(key, String(item));
    }
    const qs = search.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  /** Sends the request; a non-2xx reply throws the server's StrataError. */
  async send(spec: RequestSpec): Promise<Response> {
    const headers: Record<string, string> = { ...spec.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let body: Body | undefined = spec.body;
    if (spec.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.json);
    } else if (spec.contentType) headers["content-type"] = spec.contentType;
    const init: RequestInit & { duplex?: "half" } = { method: spec.method, headers, body, signal: spec.signal };
    if (body instanceof ReadableStream) init.duplex = "half";
    const response = await this.fetchImpl(this.url(spec.path, spec.query), init);
    if (!response.ok) {
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      throw StrataError.fromBody(parsed, response.status);
    }
    return response;
  }

  /**
   * A request whose body (`upload`) or reply may be gigabytes: the reply's
   * body comes back as a Node stream. Over node:http unless a fetch was
   * given, because fetch spends several times the CPU per byte (a 550 MB
   * upload: ~1.5 s against ~0.45 s), and that CPU is taken from the server
   * when both run on one machine.
   */
  async transfer(spec: RequestSpec, upload?: AsyncIterable<Uint8Array> | Uint8Array): Promise<Readable> {
    if (this.options.fetch) {
      const body = upload === undefined || upload instanceof Uint8Array ? upload : Readable.toWeb(Readable.from(upload));
      const response = await this.send({ ...spec, ...(body ? { body: body as Body } : {}) });
      return Readable.fromWeb(response.body! as never);
    }
    const url = new URL(this.url(spec.path, spec.query));
    const headers: Record<string, string> = { ...spec.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (spec.contentType) headers["content-type"] = spec.contentType;
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      let answered = false;
      const request = (url.protocol === "https:" ? https : http).request(url, { method: spec.method, headers, signal: spec.signal }, (reply) => {
        answered = true;
        resolve(reply);
      });
      request.on("error", reject);
      if (upload === undefined) request.end();
      else if (upload instanceof Uint8Array) request.end(upload);
      // a server that refuses early closes the upload: its reply says why
      else pipeline(upload instanceof Readable ? upload : Readable.from(upload, { objectMode: false }), request).catch((error) => answered || reject(error));
    });
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        parsed = undefined;
      }
      throw StrataError.fromBody(parsed, status);
    }
    return response;
  }

  async json<T>(spec: RequestSpec): Promise<T> {
    const response = await this.send(spec);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
}
