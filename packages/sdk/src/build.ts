// Building snapshots from a build context: pack a directory (honouring
// .dockerignore with Docker's semantics), stream the upload, follow the log
// with reconnection, retry transient failures, cancel on abort.
import { lstatSync, readdirSync, readFileSync, readlinkSync, createReadStream, statSync } from "node:fs";
import { join, posix, relative, sep } from "node:path";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import ignore from "@balena/dockerignore";
import { StrataError, type Build, type BuildAccepted, type BuildLogEvent, type Snapshot as SnapshotInfo } from "@strata/contract";
import tar from "tar-stream";
import type { Http } from "./http.js";
import { isTransient, sleep, withRetry, type RetryOptions } from "./retry.js";
import { Snapshot } from "./snapshot.js";

export interface BuildOptions {
  /** A directory to pack, a .tar or .tar.gz file, or the archive's bytes. */
  context: string | Uint8Array;
  /** Path of the Dockerfile inside the context (default Dockerfile). */
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  name?: string;
  labels?: Record<string, string>;
  /** Move the name from the snapshot that holds it to the new one. */
  replace?: boolean;
  /** Each line of the build log, as it comes. */
  onLog?: (line: string) => void;
  /** Cancels the server's build too. */
  signal?: AbortSignal;
  retry?: Omit<RetryOptions, "signal">;
}

/**
 * Packs a directory as tar.gz, leaving out what .dockerignore excludes with
 * the Docker client's semantics: the Dockerfile and .dockerignore always go
 * (the engine leaves them out of the build when .dockerignore excludes them),
 * even inside an excluded directory. Files linked to one another (hard
 * links) go as one file and links to it, as `tar` packs them.
 */
export function packContext(dir: string, dockerfile = "Dockerfile"): Readable {
  let patterns: string[] = [];
  try {
    patterns = readFileSync(join(dir, ".dockerignore"), "utf8").split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  } catch {
    // no .dockerignore
  }
  // a CommonJS module whose export is also its own `default`
  const filter = ignore.default().add(patterns);
  const always = new Set([posix.normalize(dockerfile.replace(/^\.\//, "")), ".dockerignore"]);
  const reincludes = patterns.some((p) => p.startsWith("!"));
  /** Whether a directory holds a path that always goes. */
  const holdsAlways = (rel: string) => [...always].some((path) => path.startsWith(`${rel}/`));
  /** The first name packed for each inode with more than one link. */
  const packedInodes = new Map<string, string>();
  const pack = tar.pack();
  const walk = async (absolute: string) => {
    for (const name of readdirSync(absolute).sort()) {
      const path = join(absolute, name);
      const rel = relative(dir, path).split(sep).join("/");
      const info = lstatSync(path);
      const excluded = !always.has(rel) && (filter.ignores(rel) || (info.isDirectory() && filter.ignores(`${rel}/`)));
      if (info.isDirectory()) {
        // Docker keeps walking excluded directories when a later ! pattern may re-include something.
        if (excluded && !reincludes && !holdsAlways(rel)) continue;
        if (!excluded) pack.entry({ name: `${rel}/`, type: "directory", mode: info.mode & 0o7777, mtime: info.mtime, uid: 0, gid: 0 });
        await walk(path);
      } else if (excluded) {
        continue;
      } else if (info.isSymbolicLink()) {
        pack.entry({ name: rel, type: "symlink", linkname: readlinkSync(path), mode: info.mode & 0o7777, mtime: info.mtime, uid: 0, gid: 0 });
      } else if (info.isFile()) {
        const inode = `${info.dev}:${info.ino}`;
        const first = info.nlink > 1 ? packedInodes.get(inode) : undefined;
        if (first !== undefined) {
          pack.entry({ name: rel, type: "link", linkname: first, mode: info.mode & 0o7777, mtime: info.mtime, uid: 0, gid: 0 });
          continue;
        }
        if (info.nlink > 1) packedInodes.set(inode, rel);
        const entry = pack.entry({ name: rel, size: info.size, mode: info.mode & 0o7777, mtime: info.mtime, uid: 0, gid: 0 });
        await new Promise<void>((resolve, reject) => {
          createReadStream(path).on("error", reject).pipe(entry).on("finish", resolve).on("error", reject);
        });
      }
    }
  };
  walk(dir).then(() => pack.finalize(), (error) => pack.destroy(error));
  return (pack as unknown as Readable).pipe(createGzip({ level: 1 }));
}

/** A multipart/form-data body streamed part by part. */
function multipart(fields: Record<string, string>, file: () => Readable): { body: ReadableStream<Uint8Array>; contentType: string } {
  const boundary = `strata-${Math.random().toString(36).slice(2)}${Date.now()}`;
  async function* parts(): AsyncGenerator<Buffer> {
    for (const [name, value] of Object.entries(fields)) {
      yield Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
    }
    yield Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="context"; filename="context.tar.gz"\r\ncontent-type: application/octet-stream\r\n\r\n`);
    for await (const chunk of file()) yield chunk as Buffer;
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return { body: Readable.toWeb(Readable.from(parts())) as unknown as ReadableStream<Uint8Array>, contentType: `multipart/form-data; boundary=${boundary}` };
}

function contextSource(context: string | Uint8Array, dockerfile?: string): () => Readable {
  if (typeof context !== "string") return () => Readable.from([Buffer.from(context)]);
  if (statSync(context).isDirectory()) return () => packContext(context, dockerfile);
  return () => createReadStream(context);
}

/** Server-Sent Events from a response body: id, event, data. */
async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ id?: string; event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffered = "";
  let id: string | undefined;
  let event = "message";
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).replace(/\r$/, "");
      buffered = buffered.slice(newline + 1);
      if (line === "") {
        if (data.length) yield { ...(id !== undefined ? { id } : {}), event, data: data.join("\n") };
        event = "message";
        data = [];
      } else if (line.startsWith(":")) continue;
      else {
        const at = line.indexOf(":");
        const field = at < 0 ? line : line.slice(0, at);
        const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
        if (field === "id") id = value;
        else if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
    }
  }
}

export async function runBuild(http: Http, options: BuildOptions): Promise<Snapshot> {
  const { signal } = options;
  const fields: Record<string, string> = {};
  if (options.dockerfile) fields.dockerfile = options.dockerfile;
  if (options.buildArgs) fields.buildArgs = JSON.stringify(options.buildArgs);
  if (options.name) fields.name = options.name;
  if (options.labels) fields.labels = JSON.stringify(options.labels);
  if (options.replace) fields.replace = "true";
  const source = contextSource(options.context, options.dockerfile);
  const accepted = await withRetry(async () => {
    const { body, contentType } = multipart(fields, source);
    return http.json<BuildAccepted>({ method: "POST", path: "/v1/builds", body, contentType, signal });
  }, { ...options.retry, signal });
  const buildId = accepted.buildId;
  const cancel = () => {
    void http.json<Build>({ method: "DELETE", path: `/v1/builds/${buildId}` }).catch(() => undefined);
  };
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    let lastId = "";
    let attempts = 0;
    for (;;) {
      try {
        const response = await http.send({
          method: "GET", path: `/v1/builds/${buildId}/logs`, signal,
          headers: { accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) },
        });
        for await (const message of serverSentEvents(response.body!)) {
          if (message.id) lastId = message.id;
          attempts = 0;
          const event = JSON.parse(message.data) as BuildLogEvent;
          if (event.type === "log") options.onLog?.(event.line);
          else if (event.type === "done") return new Snapshot(http, event.snapshot as SnapshotInfo);
          else throw new StrataError(event.code in { cancelled: 1 } ? "cancelled" : (event.code as never), event.message);
        }
        // The stream ended without a final event: reconnect where it stopped.
        throw new TypeError("log stream ended early");
      } catch (error) {
        if (signal?.aborted) throw signal.reason ?? error;
        if (!isTransient(error) || attempts >= (options.retry?.retries ?? 4)) throw error;
        const delay = Math.min(options.retry?.maxDelayMs ?? 5000, (options.retry?.baseDelayMs ?? 200) * 2 ** attempts++);
        await sleep(delay / 2 + Math.random() * (delay / 2), signal);
      }
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}
