// Build context directories for the build stories: made from a map of file
// names to contents under the system's temp directory, removed together.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dirs: string[] = [];

/** A new directory holding `files` (name relative to it → content), parents made. */
export function context(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "strata-build-ctx-"));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

/** Removes every directory `context` made. */
export function removeContexts(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
