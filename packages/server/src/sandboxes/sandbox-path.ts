// Paths inside a sandbox: checked as given, then resolved the way the
// sandbox resolves them. Nothing is resolved by the host's rules: the walk
// goes one component at a time through the engine's stat, which follows a
// link inside the container's root, so links in the sandbox (`/lib ->
// usr/lib`) lead where they lead for the sandbox's own processes. The walk
// also says which trailing components do not exist yet, so a write makes
// only those and never touches a directory that is already there.
import { posix } from "node:path";
import { StrataError } from "@strata/contract";
import { PathFailure, type Engine, type PathStat } from "../engine/engine.js";

/** Links followed in one path before it counts as a loop (the kernel's limit). */
const maxLinks = 40;

/**
 * Mount points the runtime puts over the sandbox's root filesystem at start
 * (the kernel's views and the engine's tmpfs for /dev and /dev/shm): a file
 * written below them on the root filesystem is hidden from the sandbox, and
 * what the sandbox sees there is not on the root filesystem.
 */
const runtimeManaged = ["/proc", "/sys", "/dev"];

/**
 * Files the engine binds over the sandbox's at start: readable, but a write
 * fails in the engine (the mount is busy) and a directory restored there
 * would stop the sandbox from starting.
 */
const runtimeBound = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/**
 * The components of an absolute sandbox path, `.` and empty ones dropped;
 * `..` kept for the walk. path_invalid when the text cannot name exactly one
 * file: not absolute, NUL, a lone UTF-16 surrogate (no UTF-8 spelling), a
 * component longer than 255 bytes, or `..` above the root.
 */
export function parseSandboxPath(raw: string, field = "path"): string[] {
  const invalid = (why: string) => new StrataError("path_invalid", `${field} '${printable(raw)}' ${why}`, { details: { field } });
  if (typeof raw !== "string" || !raw.startsWith("/")) throw invalid("is not absolute");
  if (raw.includes("\0")) throw invalid("holds a NUL byte");
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(raw)) throw invalid("is not valid UTF-8");
  const parts = raw.split("/").filter((part) => part && part !== ".");
  let depth = 0;
  for (const part of parts) {
    if (Buffer.byteLength(part) > 255) throw invalid("has a component longer than 255 bytes");
    depth += part === ".." ? -1 : 1;
    if (depth < 0) throw invalid("climbs above / with '..'");
  }
  return parts;
}

/** The path as normalised text (`..` applied lexically), after parseSandboxPath's checks. */
export function normalSandboxPath(raw: string, field = "path"): string {
  parseSandboxPath(raw, field);
  return posix.normalize(raw).replace(/(.)\/+$/, "$1");
}

function printable(raw: string): string {
  // eslint-disable-next-line no-control-regex
  return String(raw).slice(0, 200).replace(/[\u0000-\u001f\uD800-\uDFFF]/g, "?");
}

/**
 * path_runtime_managed when the (resolved) path is one the runtime mounts
 * over, or below one; for writes, also the files the engine binds in.
 */
export function refuseRuntimeManaged(resolved: string, given = resolved, options: { write?: boolean } = {}): void {
  const mounts = options.write ? [...runtimeManaged, ...runtimeBound] : runtimeManaged;
  const hit = mounts.find((mount) => resolved === mount || resolved.startsWith(`${mount}/`));
  if (hit) {
    throw new StrataError("path_runtime_managed",
      `'${printable(given)}' is under ${hit}, which the runtime mounts over the sandbox's files: what is written there is hidden from the sandbox`);
  }
}

export interface ResolvedPath {
  /** The deepest component that exists, every link resolved: an absolute path without links. */
  existing: string;
  /** What stands at `existing` (never a link). */
  stat: PathStat;
  /** Components below `existing` that do not exist yet, in order (never `.` or `..`). Empty when the whole path exists. */
  missing: string[];
  /** The whole path resolved: `existing` joined with `missing`. */
  path: string;
}

/**
 * Resolves `raw` in the container as the sandbox would, following every link
 * (the last one too) inside the container's root. Errors: path_invalid (see
 * parseSandboxPath), path_symlink_loop, bad_request when a component is not
 * a directory, path_changed when the sandbox changed the path during the walk.
 */
export async function resolveSandboxPath(engine: Engine, containerId: string, raw: string, field = "path"): Promise<ResolvedPath> {
  const pending = parseSandboxPath(raw, field);
  let resolved: string[] = [];
  let stat: PathStat | null = null;
  let links = 0;
  const join = (parts: string[]) => `/${parts.join("/")}`;
  while (pending.length) {
    const name = pending.shift()!;
    if (name === "..") {
      // only reached from a link's target or a real directory: `..` of a resolved directory is its parent, and stops at /
      resolved.pop();
      stat = null;
      continue;
    }
    const candidate = join([...resolved, name]);
    const found = await statIn(engine, containerId, candidate, raw);
    if (!found) return missingFrom(engine, containerId, raw, resolved, stat, [name, ...pending]);
    if (found.isSymlink) {
      if (++links > maxLinks) throw loop(raw);
      // the engine reports the target resolved inside the container's root, as an absolute path
      resolved = [];
      stat = null;
      pending.unshift(...found.linkTarget.split("/").filter((part) => part && part !== "."));
      continue;
    }
    if (pending.length && !found.isDirectory) {
      throw new StrataError("bad_request", `'${printable(raw)}': '${candidate}' is not a directory`);
    }
    resolved.push(name);
    stat = found;
  }
  const existing = join(resolved);
  stat ??= await statIn(engine, containerId, existing, raw);
  if (!stat) throw changed(raw);
  return { existing, stat, missing: [], path: existing };
}

async function missingFrom(
  engine: Engine, containerId: string, raw: string, resolved: string[], stat: PathStat | null, rest: string[],
): Promise<ResolvedPath> {
  // what does not exist yet will be made as plain directories, so `..` among it is lexical
  const missing: string[] = [];
  for (const part of rest) {
    if (part !== "..") missing.push(part);
    else if (!missing.pop()) throw new StrataError("path_invalid", `'${printable(raw)}' climbs with '..' out of a directory that does not exist`);
  }
  const existing = `/${resolved.join("/")}`;
  stat ??= await statIn(engine, containerId, existing, raw);
  if (!stat) throw changed(raw);
  if (!stat.isDirectory) throw new StrataError("bad_request", `'${printable(raw)}': '${existing}' is not a directory`);
  return { existing, stat, missing, path: posix.join(existing, ...missing) };
}

async function statIn(engine: Engine, containerId: string, path: string, raw: string): Promise<PathStat | null> {
  try {
    return await engine.statPath(containerId, path);
  } catch (error) {
    throw pathError(error, raw) ?? error;
  }
}

/** The StrataError for a PathFailure of the engine about `raw`; null for anything else. */
export function pathError(error: unknown, raw: string): StrataError | null {
  if (!(error instanceof PathFailure)) return null;
  if (error.reason === "loop") return loop(raw);
  if (error.reason === "not_directory") return new StrataError("bad_request", `'${printable(raw)}': a component is not a directory`);
  if (error.reason === "mounted") {
    return new StrataError("path_runtime_managed", `'${printable(raw)}' reaches a file the runtime mounts into the sandbox, which cannot be replaced`);
  }
  return changed(raw);
}

function loop(raw: string): StrataError {
  return new StrataError("path_symlink_loop", `'${printable(raw)}' has a loop of symbolic links (or more than ${maxLinks} of them)`);
}

function changed(raw: string): StrataError {
  return new StrataError("path_changed", `'${printable(raw)}' changed in the sandbox while it was being resolved; try again`);
}
