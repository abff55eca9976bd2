// Checking a build context before it is queued: a readable tar (plain or
// gzip) that holds the Dockerfile, whose text is returned.
import { createReadStream } from "node:fs";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { StrataError } from "@strata/contract";
import tar from "tar-stream";

export function normalizeDockerfilePath(path: string): string {
  const normal = posix.normalize(path.replace(/^\.\//, ""));
  if (!normal || normal.startsWith("/") || normal === ".." || normal.startsWith("../")) {
    throw new StrataError("bad_request", `dockerfile must be a path inside the context, got '${path}'`);
  }
  return normal;
}

async function isGzip(file: string): Promise<boolean> {
  for await (const chunk of createReadStream(file, { start: 0, end: 1 })) {
    const head = chunk as Buffer;
    return head[0] === 0x1f && head[1] === 0x8b;
  }
  return false;
}

export async function readDockerfile(file: string, dockerfile: string): Promise<string> {
  const wanted = normalizeDockerfilePath(dockerfile);
  const extract = tar.extract();
  let text: string | undefined;
  let entries = 0;
  extract.on("entry", (header, stream, next) => {
    entries++;
    const name = posix.normalize(header.name.replace(/^\.\//, "")).replace(/\/$/, "");
    if (name === wanted && header.type === "file" && (header.size ?? 0) <= 1024 * 1024) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        text = Buffer.concat(chunks).toString("utf8");
        next();
      });
    } else {
      stream.on("end", next);
      stream.resume();
    }
  });
  const source: Readable = createReadStream(file);
  try {
    if (await isGzip(file)) await pipeline(source, createGunzip(), extract);
    else await pipeline(source, extract);
  } catch (error) {
    throw new StrataError("context_invalid", `the build context is not a readable tar or tar.gz: ${(error as Error).message}`);
  }
  if (!entries) throw new StrataError("context_invalid", "the build context is empty or not a tar archive");
  if (text === undefined) throw new StrataError("dockerfile_not_found", `the build context has no '${wanted}'`);
  return text;
}
