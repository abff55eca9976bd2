// Durable writes: temp file, fsync, rename, fsync of the directory, so a file
// is either absent or whole after a crash.
import { randomUUID } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Suffix of temp files; startup recovery and gc remove any left by a crash. */
export const tempSuffix = ".strata-tmp";

export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileDurable(path: string, content: string | Buffer): void {
  const temp = `${path}.${randomUUID()}${tempSuffix}`;
  const fd = openSync(temp, "w", 0o600);
  try {
    writeSync(fd, typeof content === "string" ? Buffer.from(content) : content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  fsyncDirectory(dirname(path));
}
