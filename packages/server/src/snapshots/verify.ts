// Verifying a snapshot: recompute, part by part, the manifest digest, the
// image the engine holds and each blob, and report what matches. A
// directory archive is also read through the check its restores run.
import { createHash, type Hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { StrataError, type Snapshot, type VerifyReport } from "@strata/contract";
import { checkDirectoryArchive } from "../blobs/tar-check.js";
import { TarScanner } from "../blobs/tar-scan.js";
import type { Context } from "../context.js";
import { findSnapshot } from "./find.js";
import { parseManifest, sha256 } from "./manifest.js";

type Part = VerifyReport["parts"][number];

export async function verifySnapshot(ctx: Context, ref: string): Promise<VerifyReport> {
  const snapshot = findSnapshot(ctx, ref);
  const parts: Part[] = [];
  if (snapshot.status === "ready") {
    parts.push(verifyManifest(ctx, snapshot));
    if (snapshot.imageId) parts.push(...(await verifyImage(ctx, snapshot)));
    if (snapshot.contentDigest) parts.push(...(await (snapshot.kind === "directory" ? verifyDirectoryBlob(ctx, snapshot.contentDigest) : [await verifyBlob(ctx, snapshot.contentDigest)])));
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

/**
 * The image: present under its recorded id (the id is the digest of its
 * config, which names every layer's diff id), and every layer's content
 * recomputed from the engine's export against the diff ids the manifest
 * recorded.
 */
async function verifyImage(ctx: Context, snapshot: Snapshot): Promise<Part[]> {
  const imageId = snapshot.imageId!;
  const image = await ctx.engine.inspectImage(imageId);
  if (!image) return [{ part: "image", ref: imageId, expected: imageId, ok: false, code: "image_not_found", message: "the engine does not have the image" }];
  const parts: Part[] = [{ part: "image", ref: imageId, expected: imageId, actual: image.id, ok: image.id === imageId }];
  let recorded: string[] = image.layers;
  try {
    recorded = parseManifest(readFileSync(join(ctx.snapshots.root, snapshot.id, "manifest.json"), "utf8")).content.layers ?? image.layers;
  } catch {
    // the manifest part reports this
  }
  const seen = new Set<string>();
  let layer: Hash | undefined;
  const scanner = new TarScanner(
    (entry) => {
      if (layer) seen.add(`sha256:${layer.digest("hex")}`);
      layer = entry.type === "0" && entry.name.endsWith("/layer.tar") ? createHash("sha256") : undefined;
    },
    (piece) => layer?.update(piece),
  );
  await ctx.engine.saveImages([imageId], (piece) => scanner.push(piece));
  // the save comes unframed until the engine closes: only its end block says it is whole
  if (!scanner.ended) throw new Error("the engine's save of the image ended early");
  if (layer) seen.add(`sha256:${layer.digest("hex")}`);
  for (const layer of recorded) {
    const ok = seen.has(layer);
    parts.push({ part: "layer", ref: layer, expected: layer, ...(ok ? { actual: layer } : {}), ok, ...(ok ? {} : { code: "layer_mismatch", message: "no layer of the image has this content digest" }) });
  }
  return parts;
}

/**
 * A directory archive: its digest recomputed and, in the same reading, the
 * check every restore runs (blobs/tar-check.ts), so a verified snapshot is
 * one that restores.
 */
async function verifyDirectoryBlob(ctx: Context, digest: string): Promise<Part[]> {
  let checked: { members: number; engineRefusal?: string };
  try {
    checked = await checkDirectoryArchive(ctx.blobs.read(digest));
  } catch (error) {
    const code = error instanceof StrataError ? error.code : "internal";
    const message = (error as Error).message;
    if (code === "blob_corrupt") return [{ part: "blob", ref: digest, expected: digest, ok: false, code, message }];
    // the check stopped first: damaged bytes may be why, so the digest is recomputed to the end
    return [await verifyBlob(ctx, digest), { part: "archive", ref: digest, expected: "restorable", ok: false, code, message }];
  }
  return [
    { part: "blob", ref: digest, expected: digest, actual: digest, ok: true },
    {
      part: "archive", ref: digest, expected: "restorable", actual: `restorable (${checked.members} members)`, ok: true,
      // restorable into runc sandboxes; the engine's archive API (gVisor) refuses some links: say so
      ...(checked.engineRefusal ? { message: `not into gVisor sandboxes: ${checked.engineRefusal}` } : {}),
    },
  ];
}

async function verifyBlob(ctx: Context, digest: string): Promise<Part> {
  const result = await ctx.blobs.verify(digest);
  return {
    part: "blob", ref: digest, expected: digest, ...(result.actual ? { actual: result.actual } : {}), ok: result.ok,
    ...(result.ok ? {} : { code: "blob_corrupt", message: result.message ?? "blob does not match" }),
  };
}
