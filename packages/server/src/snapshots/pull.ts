// Restoring from an imageUri: a snapshot pushed to a registry, pinned by
// digest, becomes a local snapshot (origin imageUri) so lineage carries on. A
// container image is pulled by the engine; a directory artifact's layer is
// fetched, checked against its digests and by the directory archive check,
// and stored as a blob.
import { createHash, randomUUID } from "node:crypto";
import { Transform } from "node:stream";
import { StrataError, type SandboxSettings, type Snapshot } from "@strata/contract";
import { checkedArchive } from "../blobs/tar-check.js";
import { unzstdStream } from "../blobs/zstd.js";
import { labelKeys, snapshotRepo, type Context } from "../context.js";
import { engineError } from "../engine/errors.js";
import { RegistryClient } from "../registry/client.js";
import { isLoopbackHost } from "../registry/config.js";
import { markReady } from "./ready.js";
import { isSettings, type ManifestV1 } from "./manifest.js";

const uriPattern = /^([A-Za-z0-9.-]+(?::\d+)?|\[[0-9a-fA-F:]+\](?::\d+)?)\/([a-z0-9]+(?:[._/-][a-z0-9]+)*)@(sha256:[0-9a-f]{64})$/;

export function parseImageUri(uri: string): { host: string; repo: string; digest: string } {
  const match = uriPattern.exec(uri);
  if (!match) throw new StrataError("bad_request", `imageUri must be HOST/REPOSITORY@sha256:<digest> (pinned by digest), got '${uri}'`);
  return { host: match[1]!, repo: match[2]!, digest: match[3]! };
}

function clientFor(ctx: Context, host: string): RegistryClient {
  if (ctx.registry && ctx.registry.config.host === host) return ctx.registry;
  return new RegistryClient({ host, namespace: "", insecure: isLoopbackHost(host) });
}

/**
 * The source's settings an image carries in its label (none on images pushed
 * before they were recorded). A label that does not read as settings is
 * refused rather than ignored: ignoring it could drop the source's isolation.
 */
function settingsLabel(text: string | undefined, imageUri: string): SandboxSettings | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!isSettings(value)) throw new StrataError("bad_request", `the image of ${imageUri} carries a ${labelKeys.settings} label that is not valid settings`);
  return value;
}

/** The local snapshot for an imageUri, pulling it when this server has none. */
export async function snapshotFromImageUri(ctx: Context, imageUri: string, signal?: AbortSignal): Promise<Snapshot> {
  const { host, repo, digest } = parseImageUri(imageUri);
  // A record naming this imageUri is reused only when its content is provably what the registry holds
  // under it: an imported archive can claim any imageUri in its manifest.
  const known = ctx.index.findSnapshotByImageUri(imageUri);
  if (known?.kind === "container" && known.imageId) {
    const image = await ctx.engine.inspectImage(known.imageId);
    if (image?.repoDigests.includes(`${host}/${repo}@${digest}`)) return known;
  }
  const client = clientFor(ctx, host);
  const manifest = await client.getManifest(repo, digest);
  const annotations = manifest.json.annotations ?? {};
  if (known?.kind === "directory" && known.contentDigest && annotations["dev.strata.content-digest"] === known.contentDigest) return known;
  const id = randomUUID();
  const createdAt = new Date().toISOString();
  let content: ManifestV1["content"];
  let kind: "container" | "directory";
  let pinned: string | undefined;
  let settings: SandboxSettings | undefined;
  try {
    if (annotations["dev.strata.kind"] === "directory") {
      kind = "directory";
      const layer = manifest.json.layers?.[0];
      const expected = annotations["dev.strata.content-digest"];
      const path = annotations["dev.strata.path"];
      if (!layer || !expected || !path?.startsWith("/")) throw new StrataError("bad_request", `${imageUri} is not a directory snapshot Strata can read`);
      const hash = createHash("sha256");
      const check = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
        flush(done) {
          const actual = `sha256:${hash.digest("hex")}`;
          done(actual === layer.digest ? null : new StrataError("blob_corrupt", `layer ${layer.digest} arrived with digest ${actual}`));
        },
      });
      const source = (await client.getBlob(repo, layer.digest)).pipe(check);
      const unzstd = unzstdStream();
      source.on("error", (error) => unzstd.destroy(error));
      // read through the check every restore runs: a snapshot that turns ready restores
      const archive = checkedArchive(false);
      unzstd.on("error", (error) => archive.destroy(error));
      const blob = await ctx.blobs.writeTar(source.pipe(unzstd).pipe(archive), { signal });
      pinned = blob.digest;
      if (blob.digest !== expected) {
        if (blob.created) ctx.blobs.remove(blob.digest);
        throw new StrataError("blob_corrupt", `the directory in ${imageUri} has digest ${blob.digest}, its manifest says ${expected}`);
      }
      let exclude: string[] | undefined;
      try {
        exclude = annotations["dev.strata.exclude"] ? (JSON.parse(annotations["dev.strata.exclude"]) as string[]) : undefined;
      } catch {
        exclude = undefined;
      }
      content = { blobDigest: blob.digest, sizeBytes: blob.sizeBytes, fileCount: blob.fileCount, path, ...(exclude ? { exclude } : {}) };
    } else {
      kind = "container";
      await ctx.engine.pullImage(`${host}/${repo}@${digest}`, client.engineAuth(), undefined, signal).catch((error) => {
        throw engineError(error, "pull");
      });
      const image = await ctx.engine.inspectImage(`${host}/${repo}@${digest}`);
      if (!image) throw new StrataError("image_not_found", `the engine pulled ${imageUri} but cannot find it`);
      // Tagged as this server's, as a capture or an import is: its delete (and gc) then treat it like any other.
      await ctx.engine.tagImage(image.id, snapshotRepo(ctx), id).catch((error) => {
        throw engineError(error, "tag");
      });
      content = { imageId: image.id, sizeBytes: 0, imageSizeBytes: image.sizeBytes, layers: image.layers };
      settings = settingsLabel(image.labels[labelKeys.settings], imageUri);
    }
  } catch (error) {
    if (pinned) ctx.blobs.unpin(pinned);
    throw error;
  }
  const manifestDoc: ManifestV1 = {
    schemaVersion: 1, id, kind, sandboxId: "", parent: null,
    baseImage: { ref: imageUri, digest: content.imageId ?? content.blobDigest! },
    labels: {}, origin: { imageUri }, content, createdAt,
    ...(settings ? { settings } : {}),
  };
  try {
    const record = markReady(ctx, manifestDoc, { imageUri, ...(pinned ? { storedBytes: ctx.blobs.storedSize(pinned) } : {}) });
    ctx.config.log({ event: "snapshot_pulled", snapshotId: id, imageUri });
    return record;
  } finally {
    if (pinned) ctx.blobs.unpin(pinned);
  }
}
