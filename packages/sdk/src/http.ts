// The SDK's HTTP transport: fetch with the API key, errors rebuilt as StrataError.
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

  async json<T>(spec: RequestSpec): Promise<T> {
    const response = await this.send(spec);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
}
