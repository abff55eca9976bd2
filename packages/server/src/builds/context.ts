// Checking a build context before it is queued: a readable tar (plain or
// gzip) that holds the Dockerfile, whose text is returned. A `.dockerignore`
// in the context is applied here as the Docker client applies it when it
// packs a directory (`@balena/dockerignore`, the library the SDK's packer
// uses), so a context sent as a tar by any client builds the same image as
// the same directory sent by the SDK. The Dockerfile and `.dockerignore`
// always go to the engine, which leaves them out of the build itself when
// `.dockerignore` excludes them.
import { createReadStream, createWriteStream, renameSync, rmSync } from "node:fs";
import { posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import ignore from "@balena/dockerignore";
import { StrataError } from "@strata/contract";
import tar from "tar-stream";

export function normalizeDockerfilePath(path: string): string {
  const normal = posix.normalize(path.replace(/^\.\//, ""));
  if (!normal || normal.startsWith("/") || normal === ".." || normal.startsWith("../")) {
    throw new StrataError("bad_request", `dockerfile must be a path inside the context, got '${path}'`);
  }
  return normal;
}

/** A member's name as `.dockerignore` patterns see it: relative, no `./`, no trailing slash. */
function memberPath(name: string): string {
  return posix.normalize(name.replace(/^(\.\/)+/, "")).replace(/\/+$/, "");
}

async function isGzip(file: string): Promise<boolean> {
  for await (const chunk of createReadStream(file, { start: 0, end: 1 })) {
    const head = chunk as Buffer;
    return head[0] === 0x1f && head[1] === 0x8b;
  }
  return false;
}

/** The context file as a plain tar stream. */
async function plainTar(file: string): Promise<Readable> {
  const source = createReadStream(file);
  return (await isGzip(file)) ? source.pipe(createGunzip()).on("error", () => undefined) : source;
}

const readable = (error: unknown) => new StrataError("context_invalid", `the build context is not a readable tar or tar.gz: ${(error as Error).message}`);

/** What the first reading of a context finds. */
interface ContextScan {
  entries: number;
  dockerfile?: string;
  dockerignore?: string;
  /** Hard link targets, each with the names of the links to it, in order. */
  links: Map<string, string[]>;
}

async function scan(file: string, wanted: string): Promise<ContextScan> {
  const found: ContextScan = { entries: 0, links: new Map() };
  const extract = tar.extract();
  extract.on("entry", (header, stream, next) => {
    found.entries++;
    const name = memberPath(header.name);
    const small = header.type === "file" && (header.size ?? 0) <= 1024 * 1024;
    if (header.type === "link" && header.linkname) {
      const target = memberPath(header.linkname);
      found.links.set(target, [...(found.links.get(target) ?? []), name]);
    }
    if (small && (name === wanted || name === ".dockerignore")) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk) => chunks.push(chunk as Buffer));
      stream.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (name === wanted) found.dockerfile = text;
        if (name === ".dockerignore") found.dockerignore = text;
        next();
      });
    } else {
      stream.on("end", next);
      stream.resume();
    }
  });
  try {
    await pipeline(await plainTar(file), extract);
  } catch (error) {
    throw readable(error);
  }
  return found;
}

/** The patterns of a `.dockerignore`, as the Docker client reads them. */
function patterns(text: string): string[] {
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line && !line.startsWith("#"));
}

/**
 * Rewrites the context without what `.dockerignore` excludes. A hard link
 * kept whose target is excluded takes the target's content itself, and later
 * links to that target point to it.
 */
async function applyDockerignore(file: string, found: ContextScan, always: Set<string>, rules: string[]): Promise<void> {
  const filter = ignore.default().add(rules);
  const excluded = (name: string) => name !== "." && !always.has(name) && filter.ignores(name);
  /** Excluded link targets and the kept name that carries their content instead. */
  const carriedBy = new Map<string, string>();
  for (const [target, names] of found.links) {
    if (!excluded(target)) continue;
    const kept = names.find((name) => !excluded(name));
    if (kept) carriedBy.set(target, kept);
  }
  const temp = `${file}.filtered`;
  const extract = tar.extract();
  const pack = tar.pack();
  extract.on("entry", (header, stream, next) => {
    const name = memberPath(header.name);
    const carrier = carriedBy.get(name);
    const drop = () => {
      stream.on("end", next);
      stream.resume();
    };
    if (header.type === "link") {
      const target = memberPath(header.linkname ?? "");
      // the carrier itself was written with the target's content
      if (excluded(name) || carriedBy.get(target) === name) return drop();
      const linkname = carriedBy.get(target) ?? header.linkname;
      if (excluded(target) && !carriedBy.has(target)) return drop();
      pack.entry({ ...header, linkname }, (error) => next(error));
      return stream.resume();
    }
    if (excluded(name) && !carrier) return drop();
    const entry = pack.entry(carrier ? { ...header, name: carrier } : header, (error) => next(error));
    stream.pipe(entry);
  });
  extract.on("finish", () => pack.finalize());
  try {
    await Promise.all([
      pipeline(await plainTar(file), extract),
      pipeline(pack, new PassThrough(), createWriteStream(temp, { mode: 0o600 })),
    ]);
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw readable(error);
  }
}

/**
 * Checks the context in `file` and returns the Dockerfile's text. With a
 * `.dockerignore` in the context, the file is rewritten as a plain tar
 * without what it excludes.
 * Errors: context_invalid (not a tar or tar.gz, or empty),
 * dockerfile_not_found, bad_request (a dockerfile path outside the context).
 */
export async function prepareContext(file: string, dockerfile: string): Promise<string> {
  const wanted = normalizeDockerfilePath(dockerfile);
  const found = await scan(file, wanted);
  if (!found.entries) throw new StrataError("context_invalid", "the build context is empty or not a tar archive");
  if (found.dockerfile === undefined) throw new StrataError("dockerfile_not_found", `the build context has no '${wanted}'`);
  const rules = found.dockerignore === undefined ? [] : patterns(found.dockerignore);
  if (rules.length) await applyDockerignore(file, found, new Set([wanted, ".dockerignore"]), rules);
  return found.dockerfile;
}
