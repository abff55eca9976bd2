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
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrataError } from "@strata/contract";
import { checkedArchive } from "../blobs/tar-check.js";
import { adopt, batchedInto, childOutput } from "../streams.js";

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
    // the C locale: names pass as bytes, and tar's messages are the ones matched below
    const env = { ...process.env, LC_ALL: "C" };
    return adopt(spawn(command, args, { stdio: [stdin, out, "pipe", handle.fd], signal, killSignal: "SIGKILL", env }));
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
  // tar leaves sockets out with only a warning: the snapshot would miss them silently
  let socket: string | null = null;
  let tail = "";
  child.stderr.on("data", (data: Buffer) => {
    const text = tail + data.toString("latin1");
    socket ??= /([^\n]*): socket ignored/.exec(text)?.[1]?.replace(/^tar: /, "") ?? null;
    tail = text.slice(-300);
  });
  // 1 is tar's "a file changed as it was read": the sandbox runs on, as it does for the engine's archive
  const out = childOutput(child, (code, killed, stderr) => {
    if (socket !== null) return new StrataError("special_file_unsupported", `'${socket}' is a socket: special files are not kept in directory snapshots`);
    return code === 0 || code === 1 ? null : new StrataError("internal", `reading '${path}' failed (tar ${code ?? killed}): ${stderr}`);
  });
  // tar may end, and the stream fail, while this waits below, before the
  // caller has a listener on it: the error stays on the stream (its
  // `errored`), which the caller's pipeline or iterator reports
  out.on("error", () => undefined);
  // only now that every listener is on: the child may end while this waits
  await handle.close();
  return out;
}

/**
 * Extracts a directory archive into the directory at `path` under `root`
 * (made when missing). Tar reads only the normalized archive the check writes
 * (blobs/tar-check.ts): no absolute names or `..`, every member under a
 * directory the archive itself made (tar replaces a link standing there with
 * the directory, so a link already in the sandbox is never followed), hard
 * links only to regular files of the archive, no special files, each name
 * once; otherwise `archive_unsafe_path`, and tar is killed before it reads the
 * member refused (what it made before stays: restores go into a container
 * that is removed when they fail).
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
  const check = checkedArchive(true);
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
