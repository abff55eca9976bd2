// A thin HTTP client for the Docker Engine API over its unix socket (or TCP).
// Requests stream in both directions; nothing here knows about sandboxes.
import http from "node:http";
import net from "node:net";
import type { Duplex, Readable } from "node:stream";
import { batchedInto } from "../streams.js";
import { StringDecoder } from "node:string_decoder";

export interface DockerRequest {
  method: "GET" | "POST" | "PUT" | "DELETE" | "HEAD";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** A JSON value, or a stream sent as-is. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * A connection of its own instead of the shared pool: for requests that
   * may wait a long time (a container's wait), so they never hold a pooled
   * socket other calls queue behind.
   */
  ownConnection?: boolean;
}

export interface DockerReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

/** An error reply from the engine, with its status and message. */
export class DockerApiError extends Error {
  constructor(readonly status: number, message: string, readonly path: string) {
    super(message);
    this.name = "DockerApiError";
  }
}

/** Where the engine listens: `unix:///var/run/docker.sock` or `tcp://host:port`. */
export function parseDockerHost(dockerHost: string): { socketPath?: string; host?: string; port?: number } {
  if (dockerHost.startsWith("unix://")) return { socketPath: dockerHost.slice("unix://".length) };
  if (dockerHost.startsWith("/")) return { socketPath: dockerHost };
  const match = /^(?:tcp|http):\/\/([^:/]+)(?::(\d+))?\/?$/.exec(dockerHost);
  if (!match) throw new Error(`unsupported DOCKER_HOST: ${dockerHost}`);
  return { host: match[1]!, port: match[2] ? Number(match[2]) : 2375 };
}

function isReadable(value: unknown): value is Readable {
  return !!value && typeof (value as Readable).pipe === "function";
}

export class DockerClient {
  private readonly target: { socketPath?: string; host?: string; port?: number };
  private readonly agent: http.Agent;
  readonly isLocal: boolean;

  constructor(dockerHost: string) {
    this.target = parseDockerHost(dockerHost);
    this.isLocal = !!this.target.socketPath;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  private options(req: DockerRequest, headers: Record<string, string>): http.RequestOptions {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(req.query ?? {})) if (value !== undefined) search.set(key, String(value));
    const qs = search.toString();
    return {
      ...this.target,
      agent: req.ownConnection ? false : this.agent,
      method: req.method,
      path: qs ? `${req.path}?${qs}` : req.path,
      headers: { host: "docker", ...headers },
      signal: req.signal,
    };
  }

  private send(req: DockerRequest, clientRequest: http.ClientRequest): void {
    if (req.body === undefined) clientRequest.end();
    else if (isReadable(req.body)) {
      // a body that fails or closes before its end aborts the request, so the engine never waits on it
      let ended = false;
      req.body.on("end", () => (ended = true));
      req.body.on("error", (error) => clientRequest.destroy(error));
      req.body.on("close", () => {
        if (!ended) clientRequest.destroy(new Error("the request body closed before its end"));
      });
      const sink = batchedInto(clientRequest);
      sink.on("error", (error) => clientRequest.destroy(error)); // the engine's end broke: the request fails with it
      req.body.pipe(sink);
    } else clientRequest.end(JSON.stringify(req.body));
  }

  private headersFor(req: DockerRequest): Record<string, string> {
    if (req.body === undefined) return {};
    if (isReadable(req.body)) return { "content-type": req.contentType ?? "application/x-tar", "transfer-encoding": "chunked" };
    return { "content-type": "application/json" };
  }

  /** Sends a request and returns the reply with its body unread. */
  request(req: DockerRequest): Promise<DockerReply> {
    return new Promise((resolve, reject) => {
      const clientRequest = http.request(this.options(req, { ...this.headersFor(req), ...req.headers }), (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      clientRequest.on("error", reject);
      this.send(req, clientRequest);
    });
  }

  /**
   * Starts a request whose body the caller writes into `input` (chunked); a
   * write's callback fires once its bytes are handed to the socket, so their
   * memory can be reused. Destroying `input` aborts the request.
   */
  upload(req: Omit<DockerRequest, "body">): { input: http.ClientRequest; reply: Promise<DockerReply> } {
    const headers = { "content-type": req.contentType ?? "application/octet-stream", "transfer-encoding": "chunked", ...req.headers };
    let input!: http.ClientRequest;
    const reply = new Promise<DockerReply>((resolve, reject) => {
      input = http.request(this.options(req, headers), (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
      input.on("error", reject);
    });
    return { input, reply };
  }

  /**
   * A GET whose reply body is read into one reused buffer instead of a new
   * buffer per read: `take` gets each piece of the body, and the buffer is
   * reused once the promise it returns settles (nothing is read meanwhile).
   * Asked as HTTP/1.0, so the engine sends the body as it is and closes at
   * its end: no chunked framing to undo. Error statuses throw DockerApiError.
   */
  readInto(path: string, take: (piece: Buffer) => Promise<void> | void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      let head: Buffer | null = Buffer.alloc(0);
      let status = 0;
      let errorBody: Buffer[] | null = null;
      let pending: Promise<void> | void;
      let failed = false;
      const fail = (error: Error) => {
        if (failed) return;
        failed = true;
        socket.destroy();
        reject(error);
      };
      const onPiece = (length: number): boolean => {
        let piece: Buffer = buffer.subarray(0, length);
        if (head) {
          head = Buffer.concat([head, piece]);
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) {
            if (head.length > 64 * 1024) fail(new Error(`the engine's reply to ${path} has no end of headers`));
            return true;
          }
          status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(head.toString("latin1", 0, 12))?.[1] ?? 0);
          piece = head.subarray(end + 4); // a copy: safe to hold
          head = null;
          if (status < 200 || status >= 300) errorBody = [];
        }
        if (errorBody) {
          errorBody.push(Buffer.from(piece));
          return true;
        }
        if (!piece.length) return true;
        try {
          pending = take(piece);
        } catch (error) {
          fail(error as Error);
          return false;
        }
        if (!pending) return true;
        pending.then(() => failed || socket.resume(), fail);
        return false;
      };
      const target = this.target.socketPath ? { path: this.target.socketPath } : { host: this.target.host!, port: this.target.port! };
      const socket = net.connect({ ...target, onread: { buffer, callback: onPiece } });
      socket.on("connect", () => socket.write(`GET ${path} HTTP/1.0\r\nHost: docker\r\n\r\n`));
      socket.on("error", fail);
      socket.on("end", () => {
        void Promise.resolve(pending).then(() => {
          if (failed) return;
          if (head) fail(new Error(`the engine closed ${path} before replying`));
          else if (errorBody) fail(new DockerApiError(status, errorMessage(Buffer.concat(errorBody).toString("utf8")), path));
          else resolve();
        }, fail);
      });
      socket.on("close", () => fail(new Error(`the engine's reply to ${path} closed early`)));
      if (signal?.aborted) fail(signal.reason as Error);
      signal?.addEventListener("abort", () => fail(signal.reason as Error), { once: true });
    });
  }

  /** Sends a request and parses a JSON reply; error statuses throw DockerApiError. */
  async json<T>(req: DockerRequest): Promise<T> {
    const reply = await this.request(req);
    const text = await readText(reply.body);
    if (refused(reply.status)) throw new DockerApiError(reply.status, errorMessage(text), req.path);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Like json(), for endpoints that reply with no body (204). */
  async call(req: DockerRequest): Promise<number> {
    const reply = await this.request(req);
    const text = await readText(reply.body);
    if (refused(reply.status)) throw new DockerApiError(reply.status, errorMessage(text), req.path);
    return reply.status;
  }

  /** Sends a request that upgrades to a raw duplex stream (exec attach). */
  hijack(req: DockerRequest): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const headers = { ...this.headersFor(req), connection: "Upgrade", upgrade: "tcp" };
      const clientRequest = http.request({ ...this.options(req, headers), agent: false });
      clientRequest.on("upgrade", (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      clientRequest.on("response", (res) => {
        void readText(res).then((text) => reject(new DockerApiError(res.statusCode ?? 0, errorMessage(text), req.path)));
      });
      clientRequest.on("error", reject);
      clientRequest.end(req.body === undefined ? undefined : JSON.stringify(req.body));
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The engine's progress stream (pull, push, load, build): one JSON message per line. */
export interface EngineMessage {
  stream?: string;
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string };
}

export async function* engineMessages(stream: Readable): AsyncGenerator<EngineMessage> {
  const decoder = new StringDecoder("utf8");
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.write(chunk as Buffer);
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) yield JSON.parse(line) as EngineMessage;
    }
  }
  buffered += decoder.end();
  if (buffered.trim()) yield JSON.parse(buffered) as EngineMessage;
}

export async function readText(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Whether a reply status is a refusal: 4xx and 5xx, and redirects too (the
 * engine redirects paths it cleaned, e.g. a name holding `../`), but not 304
 * (start or stop of a container already in that state).
 */
function refused(status: number): boolean {
  return (status >= 300 && status !== 304) || status < 200;
}

function errorMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: string };
    if (parsed.message) return parsed.message;
  } catch {
    // not JSON: use the text as it is
  }
  return text.trim() || "engine error";
}
