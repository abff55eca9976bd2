// Verifying a snapshot: recompute, part by part, the manifest digest, the
// image the engine holds and each blob, and report what matches.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Snapshot, VerifyReport } from "@strata/contract";
import type { Context } from "../context.js";
import { findSnapshot } from "./find.js";
import { sha256 } from "./manifest.js";

type Part = VerifyReport["parts"][number];

export async function verifySnapshot(ctx: Context, ref: string): Promise<VerifyReport> {
  const snapshot = findSnapshot(ctx, ref);
  const parts: Part[] = [];
  if (snapshot.status === "ready") {
    parts.push(verifyManifest(ctx, snapshot));
    if (snapshot.imageId) parts.push(await verifyImage(ctx, snapshot.imageId));
    if (snapshot.contentDigest) parts.push(await verifyBlob(ctx, snapshot.contentDigest));
  } else {
    parts.push({ part: "manifest", ref: snapshot.id, expected: "ready", actual: snapshot.status, ok: false, code: "snapshot_not_ready", message: `snapshot is ${snapshot.status}` });
  }
  return { snapshotId: snapshot.id, ok: parts.every((part) => part.ok), parts };
}

function verifyManifest(ctx: Context, snapshot: Snapshot): Part {
  const file = join(ctx.snapshots.root, snapshot.id, "manifest.json");
  try {
    const actual = sha256(readFileSync(file));
    const ok = actual === snapshot.digest;
    return { part: "manifest", ref: `snapshots/${snapshot.id}/manifest.json`, expected: snapshot.digest!, actual, ok, ...(ok ? {} : { code: "manifest_mismatch", message: "the manifest on disk does not match the recorded digest" }) };
  } catch (error) {
    return { part: "manifest", ref: `snapshots/${snapshot.id}/manifest.json`, expected: snapshot.digest!, ok: false, code: "manifest_missing", message: (error as Error).message };
  }
}

async function verifyImage(ctx: Context, imageId: string): Promise<Part> {
  const image = await ctx.engine.inspectImage(imageId);
  if (!image) return { part: "image", ref: imageId, expected: imageId, ok: false, code: "image_not_found", message: "the engine does not have the image" };
  const ok = image.id === imageId;
  return { part: "image", ref: imageId, expected: imageId, actual: image.id, ok };
}

async function verifyBlob(ctx: Context, digest: string): Promise<Part> {
  const result = await ctx.blobs.verify(digest);
  return {
    part: "blob", ref: digest, expected: digest, ...(result.actual ? { actual: result.actual } : {}), ok: result.ok,
    ...(result.ok ? {} : { code: "blob_corrupt", message: result.message ?? "blob does not match" }),
  };
}
