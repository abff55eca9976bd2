// The manifest: a snapshot's immutable record as canonical JSON (sorted keys,
// no insignificant whitespace). Its digest is sha256 over those exact bytes.
import { createHash } from "node:crypto";
import type { SandboxSettings } from "@strata/contract";

export interface ManifestV1 {
  schemaVersion: 1;
  id: string;
  kind: "container" | "directory" | "memory";
  sandboxId: string;
  parent: { id: string; digest: string | null } | null;
  baseImage: { ref: string; digest: string };
  labels: Record<string, string>;
  /**
   * Container and memory snapshots: the source sandbox's isolation, network
   * and resource limits, which restores inherit unless the request sets them.
   * Absent from manifests written before it was recorded.
   */
  settings?: SandboxSettings;
  /** Pulled from a registry rather than captured here. */
  origin?: { imageUri: string };
  content: {
    /** Container and memory snapshots: the committed image. */
    imageId?: string;
    /** Bytes the snapshot added (container), or of the archive (directory). */
    sizeBytes: number;
    imageSizeBytes?: number;
    /** Diff ids of the image's layers, bottom first: what verify recomputes. */
    layers?: string[];
    /** Directory snapshots: the archive blob, what it holds and where it came from. */
    blobDigest?: string;
    /** Uncompressed bytes of the blob when they differ from sizeBytes (memory: the checkpoint). */
    blobSizeBytes?: number;
    fileCount?: number;
    path?: string;
    exclude?: string[];
  };
  createdAt: string;
}

/** JSON with object keys sorted at every depth and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) throw new Error("non-finite number in manifest");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
}

export function sha256(bytes: string | Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export function manifestBytes(manifest: ManifestV1): string {
  return canonicalJson(manifest);
}

const isString = (value: unknown): value is string => typeof value === "string";
const isRecordOfStrings = (value: unknown): value is Record<string, string> =>
  !!value && typeof value === "object" && !Array.isArray(value) && Object.values(value).every(isString);

const isLimit = (value: unknown, integer: boolean): boolean =>
  value === undefined || (typeof value === "number" && Number.isFinite(value) && value > 0 && (!integer || Number.isInteger(value)));

/** A settings object as the contract defines it, with no other keys. */
export function isSettings(value: unknown): value is SandboxSettings {
  if (!value || typeof value !== "object" || Array.isArray(value)) return false;
  const { isolation, network, resources, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length || (isolation !== "runc" && isolation !== "gvisor") || typeof network !== "boolean") return false;
  if (!resources || typeof resources !== "object" || Array.isArray(resources)) return false;
  const { cpus, memoryMb, pids, ...more } = resources as Record<string, unknown>;
  return !Object.keys(more).length && isLimit(cpus, false) && isLimit(memoryMb, true) && isLimit(pids, true);
}

/** Parses and checks a manifest; throws with the reason when it is malformed. */
export function parseManifest(text: string): ManifestV1 {
  const value = JSON.parse(text) as Partial<ManifestV1>;
  const fail = (why: string): never => {
    throw new Error(`malformed manifest: ${why}`);
  };
  if (value.schemaVersion !== 1) fail("schemaVersion must be 1");
  if (!isString(value.id) || !/^[0-9a-f-]{36}$/.test(value.id)) fail("id");
  if (!["container", "directory", "memory"].includes(value.kind as string)) fail("kind");
  if (!isString(value.sandboxId)) fail("sandboxId");
  if (value.parent !== null && (!value.parent || !isString(value.parent.id))) fail("parent");
  if (!value.baseImage || !isString(value.baseImage.ref) || !isString(value.baseImage.digest)) fail("baseImage");
  if (!isRecordOfStrings(value.labels)) fail("labels");
  if (!value.content || typeof value.content.sizeBytes !== "number") fail("content");
  if (value.kind === "directory" && (!isString(value.content!.blobDigest) || !/^sha256:[0-9a-f]{64}$/.test(value.content!.blobDigest))) {
    fail("content.blobDigest");
  }
  if (value.kind === "directory" && (!isString(value.content!.path) || !value.content!.path.startsWith("/"))) fail("content.path");
  if (value.kind !== "directory" && !isString(value.content!.imageId)) fail("content.imageId");
  if (value.settings !== undefined && !isSettings(value.settings)) fail("settings");
  if (!isString(value.createdAt) || Number.isNaN(Date.parse(value.createdAt))) fail("createdAt");
  return value as ManifestV1;
}
