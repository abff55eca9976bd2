// Pushing a snapshot to the registry: a container snapshot through the
// engine's push, a directory snapshot as a single-layer OCI image of its
// zstd blob; imageUri becomes `host/repo@sha256:...`.
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { StrataError, type Snapshot } from "@strata/contract";
import type { Context } from "../context.js";
import type { TransferProgress } from "../engine/engine.js";
import { engineError } from "../engine/errors.js";
import { repositoryPath } from "../registry/config.js";
import { readySnapshot } from "./find.js";
import { canonicalJson } from "./manifest.js";

export const directoryConfigType = "application/vnd.oci.image.config.v1+json";
export const directoryLayerType = "application/vnd.oci.image.layer.v1.tar+zstd";
export const ociManifestType = "application/vnd.oci.image.manifest.v1+json";

export interface PushOptions {
  repository?: string;
  onProgress?: (event: TransferProgress) => void;
  signal?: AbortSignal;
}

export async function pushSnapshot(ctx: Context, ref: string, options: PushOptions = {}): Promise<Snapshot> {
  const registry = ctx.registry;
  if (!registry) throw new StrataError("registry_not_configured", "this server has no registry (start it with --registry HOST[:PORT][/NAMESPACE])");
  const snapshot = readySnapshot(ctx, ref);
  const repo = repositoryPath(registry.config, options.repository ?? "strata-snapshots");
  let digest: string;
  if (snapshot.imageId) {
    const target = `${registry.config.host}/${repo}`;
    try {
      await ctx.engine.tagImage(snapshot.imageId, target, snapshot.id);
      try {
        digest = await ctx.engine.pushImage(target, snapshot.id, registry.engineAuth(), options.onProgress, options.signal);
      } finally {
        // the push tag was only a vehicle; the snapshot keeps its own tag
        await ctx.engine.removeImage(`${target}:${snapshot.id}`, false).catch(() => undefined);
      }
    } catch (error) {
      throw engineError(error, "push");
    }
  } else {
    digest = await pushDirectory(ctx, snapshot, repo, options);
  }
  const pushed: Snapshot = { ...snapshot, imageUri: `${registry.config.host}/${repo}@${digest}` };
  ctx.snapshots.writeRecord(pushed);
  ctx.index.putSnapshot(pushed);
  ctx.config.log({ event: "snapshot_pushed", snapshotId: snapshot.id, imageUri: pushed.imageUri });
  return pushed;
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

async function pushDirectory(ctx: Context, snapshot: Snapshot, repo: string, options: PushOptions): Promise<string> {
  const registry = ctx.registry!;
  const blobPath = ctx.blobs.path(snapshot.contentDigest!);
  const layerSize = statSync(blobPath).size;
  const layerDigest = await fileDigest(blobPath);
  const annotations = {
    "dev.strata.kind": "directory",
    "dev.strata.path": snapshot.path!,
    "dev.strata.content-digest": snapshot.contentDigest!,
    "dev.strata.file-count": String(snapshot.fileCount ?? 0),
    "dev.strata.size": String(snapshot.sizeBytes ?? 0),
    ...(snapshot.exclude?.length ? { "dev.strata.exclude": JSON.stringify(snapshot.exclude) } : {}),
  };
  const config = Buffer.from(canonicalJson({
    architecture: "amd64",
    os: "linux",
    config: { Labels: annotations },
    rootfs: { type: "layers", diff_ids: [snapshot.contentDigest!] },
  }));
  const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  options.onProgress?.({ status: "Pushing", layer: layerDigest, current: 0, total: layerSize });
  await registry.pushBlob(repo, layerDigest, layerSize, () => createReadStream(blobPath));
  options.onProgress?.({ status: "Pushed", layer: layerDigest, current: layerSize, total: layerSize });
  await registry.pushBlob(repo, configDigest, config.length, () => config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: ociManifestType,
    config: { mediaType: directoryConfigType, digest: configDigest, size: config.length },
    layers: [{ mediaType: directoryLayerType, digest: layerDigest, size: layerSize }],
    annotations,
  }));
  return registry.putManifest(repo, snapshot.id, manifest, ociManifestType);
}
