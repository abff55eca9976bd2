// The SDK's HTTP transport: fetch with the API key, errors rebuilt as StrataError;
// archives of gigabytes go over node:http (see `transfer`).
import http from "node:http";
import https from "node:https";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError } from "@strata/contract";
import { download } from "./download.js";

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
    let response: Response;
    try {
      response = await this.fetchImpl(this.url(spec.path, spec.query), init);
    } catch (error) {
      // A kept-alive connection the server closed as it was reused: a request
      // that can be repeated safely is sent once more, on a fresh connection.
      if (!staleConnection(error) || spec.method === "POST" || body instanceof ReadableStream || spec.signal?.aborted) throw error;
      response = await this.fetchImpl(this.url(spec.path, spec.query), init);
    }
    if (!response.ok) throw replyError(await response.text(), response.status);
    return response;
  }

  /**
   * A request whose body (`upload`) or reply may be gigabytes: the reply's
   * body comes back as a Node stream. Over node:http unless a fetch was
   * given, because fetch spends several times the CPU per byte (a 550 MB
   * upload: ~1.5 s against ~0.45 s), and that CPU is taken from the server
   * when both run on one machine.
   */
  async transfer(spec: RequestSpec, upload?: Upload): Promise<Readable> {
    if (this.options.fetch) {
      const body = upload === undefined || upload instanceof Uint8Array ? upload
        : Readable.toWeb("file" in upload ? counted(createReadStream(upload.file, { highWaterMark: 1024 * 1024 }), upload.onProgress) : Readable.from(upload));
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
      // a server that refuses early closes the upload: its reply says why
      const sent = (error: Error) => answered || reject(error);
      if (upload === undefined) request.end();
      else if (upload instanceof Uint8Array) request.end(upload);
      else if ("file" in upload) sendFile(request, upload).catch(sent);
      else pipeline(upload instanceof Readable ? upload : Readable.from(upload, { objectMode: false }), request).catch(sent);
    });
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      throw replyError(Buffer.concat(chunks).toString("utf8"), status);
    }
    return response;
  }

  /**
   * GETs a body of possibly gigabytes, handing it to `take` a few pieces at a
   * time; their memory is reused once the promise `take` returns settles.
   * Plain http without a given fetch reads into one reused buffer
   * (`download`); otherwise the body streams through `transfer`.
   */
  async receive(spec: RequestSpec, take: (pieces: Buffer[]) => Promise<void>): Promise<void> {
    const url = new URL(this.url(spec.path, spec.query));
    if (this.options.fetch || url.protocol !== "http:") {
      const body = await this.transfer(spec);
      for await (const chunk of body) await take([chunk as Buffer]);
      return;
    }
    const headers: Record<string, string> = { ...spec.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    const { status, errorBody } = await download(url, headers, take, spec.signal);
    if (errorBody) throw replyError(errorBody.toString("utf8"), status);
  }

  async json<T>(spec: RequestSpec): Promise<T> {
    const response = await this.send(spec);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
}

/** A file to upload; read into one reused buffer rather than a new one per read. */
export interface FileUpload {
  file: string;
  onProgress?: (bytes: number) => void;
}

export type Upload = AsyncIterable<Uint8Array> | Uint8Array | FileUpload;

/** Sends a file as the request's body, each piece once the last has been handed on. */
async function sendFile(request: http.ClientRequest, upload: FileUpload): Promise<void> {
  const file = await open(upload.file, "r");
  try {
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    let total = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      if (!bytesRead) break;
      await new Promise<void>((resolve, reject) => request.write(buffer.subarray(0, bytesRead), (error) => (error ? reject(error) : resolve())));
      total += bytesRead;
      upload.onProgress?.(total);
    }
    request.end();
  } catch (error) {
    request.destroy(error as Error);
    throw error;
  } finally {
    await file.close();
  }
}

/** A stream counting what passes through it. */
function counted(source: Readable, onProgress?: (bytes: number) => void): Readable {
  if (!onProgress) return source;
  let total = 0;
  return source.pipe(new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      onProgress(total);
      done(null, chunk);
    },
  }));
}

/** The server's error reply as a StrataError. */
function replyError(text: string, status: number): StrataError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return StrataError.fromBody(parsed, status);
}

/** Whether fetch failed on a connection the other side had closed, before any reply. */
function staleConnection(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } } | undefined)?.cause;
  return error instanceof TypeError && (cause?.code === "UND_ERR_SOCKET" || cause?.code === "ECONNRESET");
}
