// gVisor (runsc) mounts an in-memory tmpfs over /tmp at start when the
// image's /tmp is missing or empty; then the sandbox's /tmp is apart from its
// root filesystem, which the files API, directory snapshots and container
// snapshots read and write. runsc leaves a /tmp that holds anything on the
// root filesystem (it would hide files), so before every start of a gVisor
// sandbox a small marker file is put in /tmp, and /tmp is what the sandbox sees.
import type { Readable } from "node:stream";
import tar from "tar-stream";
import type { Context } from "../context.js";
import { pathError, resolveSandboxPath } from "./sandbox-path.js";

/** The file that keeps a gVisor sandbox's /tmp on its root filesystem. */
export const tmpMarker = ".strata-keep-tmp";

/**
 * Puts the marker in the (created or stopped) container's /tmp, following a
 * link there as the sandbox would; makes /tmp (root, 1777) when it is
 * missing. Nothing when the marker is there or /tmp is not a directory.
 */
export async function keepTmpOnRootfs(ctx: Context, containerId: string): Promise<void> {
  try {
    const target = await resolveSandboxPath(ctx.engine, containerId, "/tmp");
    if (!target.missing.length) {
      if (!target.stat.isDirectory) return;
      if (await ctx.engine.statPath(containerId, `${target.path}/${tmpMarker}`)) return;
    }
    const pack = tar.pack();
    const mtime = new Date();
    target.missing.forEach((_, i) => {
      const last = i === target.missing.length - 1;
      pack.entry({ name: `${target.missing.slice(0, i + 1).join("/")}/`, type: "directory", mode: last ? 0o1777 : 0o755, uid: 0, gid: 0, mtime });
    });
    const prefix = target.missing.length ? `${target.missing.join("/")}/` : "";
    pack.entry({ name: `${prefix}${tmpMarker}`, mode: 0o444, uid: 0, gid: 0, mtime }, "");
    pack.finalize();
    await ctx.engine.putArchive(containerId, target.existing, pack as unknown as Readable);
  } catch (error) {
    throw pathError(error, "/tmp") ?? error;
  }
}
