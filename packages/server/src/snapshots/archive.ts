// Shared parts of the snapshot archive format (docs/archive-format.md):
// member names, the header and the inventory.
import { posix } from "node:path";

export const archiveFormat = "strata-snapshot-archive";
export const headerName = "strata-archive.json";
export const inventoryName = "inventory.json";

export interface ArchiveHeader {
  format: typeof archiveFormat;
  version: 1;
  createdAt: string;
  snapshots: { id: string; digest: string; kind: string; name?: string; imageUri?: string }[];
  images: string[];
}

export interface InventoryEntry {
  path: string;
  size: number;
  sha256: string;
}

export type MemberKind = "header" | "manifest" | "blob" | "image" | "inventory";

const uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const manifestPattern = new RegExp(`^manifests/(${uuid})\\.json$`);
const blobPattern = /^blobs\/sha256\/([0-9a-f]{64})$/;
const safeSegment = /^[A-Za-z0-9._-]+$/;

/**
 * What a member name is, or why it is refused: absolute paths, `..` and
 * anything outside the format's names are unsafe.
 */
export function classifyMember(name: string): { kind: MemberKind; id?: string } | { unsafe: string } {
  if (name.startsWith("/")) return { unsafe: "absolute path" };
  const segments = name.split("/");
  if (segments.some((s) => s === ".." || s === "." || s === "")) return { unsafe: "'..', '.' or empty path segment" };
  if (posix.normalize(name) !== name) return { unsafe: "path not in normal form" };
  if (name === headerName) return { kind: "header" };
  if (name === inventoryName) return { kind: "inventory" };
  const manifest = manifestPattern.exec(name);
  if (manifest) return { kind: "manifest", id: manifest[1]! };
  const blob = blobPattern.exec(name);
  if (blob) return { kind: "blob", id: `sha256:${blob[1]!}` };
  if (segments[0] === "images" && segments.length >= 2 && segments.length <= 3 && segments.slice(1).every((s) => safeSegment.test(s))) {
    return { kind: "image" };
  }
  return { unsafe: "not a member of the archive format" };
}
