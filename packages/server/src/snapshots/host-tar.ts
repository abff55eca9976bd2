// Reading and writing a sandbox's directories straight from the host, where
// the engine keeps the container's root filesystem: GNU tar is two to three
// times as fast as the engine's archive API. The sandbox is hostile, so no path is
// ever resolved by the host's rules: the directory is opened one component
// at a time below the root, never following a link out of it, and tar walks
// from that open directory with openat and O_NOFOLLOW, so a link swapped in
// while it reads is archived as a link, never followed.
import { spawn, type ChildProcess, type ChildProcessByStdio } from "node:child_process";
import { constants } from "node:fs";
import { lstat, mkdir, open, readlink, type FileHandle } from "node:fs/promises";
import { posix } from "node:path";
import { Transform, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError } from "@strata/contract";
import { TarScanner, type TarEntry } from "../blobs/tar-scan.js";
import { batchedInto, childOutput } from "../streams.js";

const maxLinks = 40;

function parts(path: string): string[] {
  return path.split("/").filter((part) => part && part !== ".");
}

/**
 * Opens `path` as the sandbox sees it, below `root`: symbolic links are
 * followed inside the root (absolute ones from the root, `..` stops at it).
 */
export async function openInRoot(root: string, path: string, options: { create?: boolean } = {}): Promise<FileHandle> {
  const directory = constants.O_RDONLY | constants.O_DIRECTORY;
  const stack: FileHandle[] = [await open(root, directory)];
  const pending = parts(path);
  let links = 0;
  try {
    while (pending.length) {
      const name = pending.shift()!;
      if (name === "..") {
        if (stack.length > 1) await stack.pop()!.close();
        continue;
      }
      const at = `/proc/self/fd/${stack.at(-1)!.fd}/${name}`;
      try {
        stack.push(await open(at, directory | constants.O_NOFOLLOW));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && options.create) {
          // made as root with mode 0755, as the engine makes missing directories; the next turn opens it
          await mkdir(at, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
            if (error.code !== "EEXIST") throw error;
          });
          pending.unshift(name);
          continue;
        }
        if (code === "ENOENT") throw new StrataError("path_not_found", `'${path}' does not exist in the sandbox`);
        // a link opened with O_NOFOLLOW fails with ELOOP, or ENOTDIR when O_DIRECTORY is checked first
        const isLink = (code === "ELOOP" || code === "ENOTDIR") && (await lstat(at)).isSymbolicLink();
        if (!isLink) throw new StrataError("bad_request", `'${path}' is not a directory`);
        // a symbolic link: continue with its target
        if (++links > maxLinks) throw new StrataError("path_symlink_loop", `'${path}' has a loop of symbolic links (or more than ${maxLinks} of them)`);
        const target = await readlink(at);
        if (target.startsWith("/")) while (stack.length > 1) await stack.pop()!.close();
        pending.unshift(...parts(target));
      }
    }
    return stack.pop()!;
  } finally {
    await Promise.all(stack.map((handle) => handle.close()));
  }
}

/**
 * Spawns a command with the open directory as its file descriptor 3. The
 * caller attaches its listeners before it waits for anything (closing the
 * handle included), or it could miss the child's end.
 */
function spawnWith(handle: FileHandle, signal: AbortSignal | undefined, command: string, args: string[], stdin: "ignore" | "pipe"): ChildProcess {
  try {
    const out = stdin === "pipe" ? "ignore" : "pipe";
    return spawn(command, args, { stdio: [stdin, out, "pipe", handle.fd], signal, killSignal: "SIGKILL" });
  } catch (error) {
    void handle.close();
    throw error;
  }
}

/**
 * A tar stream of the directory at `path` under `root`, entries relative to
 * it (`./...`), in name order with numeric owners and file capabilities, as
 * the engine's archive carries them. The stream fails unless tar succeeds.
 */
export async function hostTar(root: string, path: string, signal?: AbortSignal): Promise<Readable> {
  const handle = await openInRoot(root, path);
  const child = spawnWith(handle, signal, "tar", [
    "--create", "--file=-", "--directory=/proc/self/fd/3", "--sort=name", "--numeric-owner", "--one-file-system",
    // pax only where needed (long names, capabilities), no access or change times: the same files give the same bytes
    "--format=posix", "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime,delete=mtime",
    "--xattrs", "--xattrs-include=security.capability", ".",
  ], "ignore") as unknown as ChildProcessByStdio<null, Readable, Readable>;
  // 1 is tar's "a file changed as it was read": the sandbox runs on, as it does for the engine's archive
  const out = childOutput(child, (code, killed, stderr) =>
    code === 0 || code === 1 ? null : new StrataError("internal", `reading '${path}' failed (tar ${code ?? killed}): ${stderr}`));
  // only now that every listener is on: the child may end while this waits
  await handle.close();
  return out;
}

/**
 * Refuses tar members that could lead an extraction on the host out of its
 * directory: absolute names, `..`, members under anything but a directory
 * the archive itself made (tar turns an existing link there into a
 * directory, so a link already in the sandbox is never followed), and hard
 * links to anything but a regular file the archive holds. Our own captures
 * always pass; an archive crafted elsewhere and imported may not.
 */
export class ExtractGuard {
  private readonly kinds = new Map<string, "directory" | "file" | "other">([[".", "directory"]]);

  check(entry: TarEntry): void {
    const name = this.normal(entry.name);
    const unsafe = (why: string) => new StrataError("archive_unsafe_path", `member '${entry.name}' is refused: ${why}`);
    if (!"0125673".includes(entry.type)) throw unsafe(`tar type '${entry.type}' is not restored`);
    if (name === ".") {
      if (entry.type !== "5") throw unsafe("the top of the archive must be a directory");
      return;
    }
    const parent = posix.dirname(name);
    if (this.kinds.get(parent) !== "directory") throw unsafe(`'${parent}' is not a directory of the archive`);
    if (entry.type === "1" && this.kinds.get(this.normal(entry.linkname)) !== "file") {
      throw unsafe(`a hard link to '${entry.linkname}', which is not a regular file of the archive`);
    }
    this.kinds.set(name, entry.type === "5" ? "directory" : entry.type === "0" || entry.type === "7" ? "file" : "other");
  }

  private normal(raw: string): string {
    if (raw.startsWith("/") || raw.includes("\0")) throw new StrataError("archive_unsafe_path", `member '${raw}' has an absolute name`);
    const parts = raw.split("/").filter((part) => part && part !== ".");
    if (parts.includes("..")) throw new StrataError("archive_unsafe_path", `member '${raw}' climbs out with '..'`);
    return parts.length ? parts.join("/") : ".";
  }
}

/**
 * Extracts a tar stream into the directory at `path` under `root` (made when
 * missing), checking every member with ExtractGuard before tar sees it.
 * Owners, modes, times, links and file capabilities are kept.
 */
export async function hostUntar(root: string, path: string, source: Readable, signal?: AbortSignal): Promise<void> {
  const handle = await openInRoot(root, path, { create: true });
  const child = spawnWith(handle, signal, "tar", [
    "--extract", "--file=-", "--directory=/proc/self/fd/3", "--numeric-owner", "--same-owner", "--preserve-permissions",
    "--xattrs", "--xattrs-include=security.capability",
  ], "pipe") as unknown as ChildProcessByStdio<Writable, null, Readable>;
  let stderr = "";
  child.stderr.on("data", (data) => (stderr = (stderr + data).slice(-4000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code));
  });
  exited.catch(() => undefined); // awaited below; a failed spawn must not count as unhandled meanwhile
  const guard = new ExtractGuard();
  const scanner = new TarScanner((entry) => guard.check(entry));
  const check = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        scanner.push(chunk);
      } catch (error) {
        return done(error instanceof StrataError ? error : new StrataError("archive_unsafe_path", (error as Error).message));
      }
      done(null, chunk);
    },
  });
  child.stdin.on("error", () => undefined); // tar's verdict comes from its exit code
  await handle.close(); // only now that every listener is on: the child may end while this waits
  try {
    await pipeline(source, check, batchedInto(child.stdin), { signal });
  } catch (error) {
    if (error instanceof StrataError || signal?.aborted) child.kill("SIGKILL");
    const code = await exited.catch(() => null);
    // a write that broke because tar stopped: tar's own message says why
    if (!(error instanceof StrataError) && code) throw new StrataError("internal", `extracting into '${path}' failed (tar ${code}): ${stderr.trim()}`);
    child.kill("SIGKILL");
    throw error;
  }
  const code = await exited;
  if (code !== 0) throw new StrataError("internal", `extracting into '${path}' failed (tar ${code}): ${stderr.trim()}`);
}
