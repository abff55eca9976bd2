// Request and reply schemas of snapshots.
import { Type, type Static } from "@sinclair/typebox";
import { limits } from "./limits.js";
import { Labels, Name, noNul, SandboxSettings } from "./sandbox.js";

export const SnapshotKind = Type.Union([Type.Literal("container"), Type.Literal("directory"), Type.Literal("memory")]);
export type SnapshotKind = Static<typeof SnapshotKind>;

export const SnapshotStatus = Type.Union([
  Type.Literal("creating"),
  Type.Literal("ready"),
  Type.Literal("failed"),
  Type.Literal("deleting"),
]);
export type SnapshotStatus = Static<typeof SnapshotStatus>;

export const SnapshotError = Type.Object({ code: Type.String(), message: Type.String() });

export const BaseImage = Type.Object({
  ref: Type.String({ description: "The image reference the lineage started from." }),
  digest: Type.String({ description: "The engine's content digest (image id) of that image." }),
});

export const AbsolutePath = Type.String({ pattern: "^/[^\\u0000]*$", maxLength: limits.pathChars });

export const CreateSnapshotRequest = Type.Object(
  {
    kind: Type.Optional(Type.Union([Type.Literal("container"), Type.Literal("directory"), Type.Literal("memory")], {
      description: "container (default): the whole filesystem as an image; directory: one path as a content-addressed archive; memory: a gVisor checkpoint of the running processes plus the filesystem.",
    })),
    name: Type.Optional(Name),
    labels: Type.Optional(Labels),
    path: Type.Optional(Type.String({ pattern: "^/[^\\u0000]*$", maxLength: limits.pathChars, description: "Directory to capture (kind directory); `/` allowed." })),
    exclude: Type.Optional(Type.Array(Type.String({
      minLength: 1, maxLength: 1024,
      // relative to `path`, inside it: not absolute, no `..` component, no NUL
      pattern: "^(?!/)(?!(?:.*/)?\\.\\.(?:/|$))[^\\u0000]+$",
      description: "A path or glob relative to `path` (not absolute, no `..`).",
    }), {
      maxItems: 256, description: "Paths or globs relative to `path` to leave out (kind directory); an absolute one or one with `..` is a 400.",
    })),
  },
  { additionalProperties: false },
);
export type CreateSnapshotRequest = Static<typeof CreateSnapshotRequest>;

export const Snapshot = Type.Object({
  id: Type.String(),
  digest: Type.Optional(Type.String({ description: "sha256 of the canonical manifest; set once ready." })),
  kind: SnapshotKind,
  name: Type.Optional(Type.String()),
  status: SnapshotStatus,
  error: Type.Optional(SnapshotError),
  sandboxId: Type.String(),
  parent: Type.Optional(Type.String({ description: "Id of the snapshot the source sandbox was restored from." })),
  parentDigest: Type.Optional(Type.String()),
  labels: Type.Record(Type.String(), Type.String()),
  sizeBytes: Type.Optional(Type.Integer({ description: "What the snapshot added over its base." })),
  imageSizeBytes: Type.Optional(Type.Integer({ description: "Total size of the image." })),
  imageId: Type.Optional(Type.String()),
  imageUri: Type.Optional(Type.String({ description: "Engine reference pinned by image id, or registry reference pinned by digest once pushed." })),
  origin: Type.Optional(Type.Object({ imageUri: Type.String() }, { description: "Set when the snapshot was pulled from a registry rather than captured here." })),
  path: Type.Optional(Type.String({ description: "The captured directory (kind directory)." })),
  exclude: Type.Optional(Type.Array(Type.String())),
  contentDigest: Type.Optional(Type.String({ description: "sha256 of the directory archive (kind directory); the blob's address." })),
  fileCount: Type.Optional(Type.Integer({ description: "Non-directory entries in the archive (kind directory)." })),
  storedBytes: Type.Optional(Type.Integer({ description: "Bytes of the compressed blob on disk (kinds directory and memory)." })),
  checkpointBytes: Type.Optional(Type.Integer({ description: "Uncompressed bytes of the process checkpoint (kind memory)." })),
  baseImage: BaseImage,
  settings: Type.Optional(SandboxSettings),
  createdAt: Type.String({ format: "date-time" }),
  readyAt: Type.Optional(Type.String({ format: "date-time" })),
});
export type Snapshot = Static<typeof Snapshot>;

export const SnapshotList = Type.Object({
  snapshots: Type.Array(Snapshot),
  nextCursor: Type.Optional(Type.String({ description: "Pass as `cursor` for the next page." })),
});
export type SnapshotList = Static<typeof SnapshotList>;

export const ListSnapshotsQuery = Type.Object(
  {
    kind: Type.Optional(SnapshotKind),
    status: Type.Optional(SnapshotStatus),
    sandboxId: Type.Optional(Type.String()),
    label: Type.Optional(Type.Array(Type.String({ pattern: "^[^=]+=.*$" }), { description: "`key=value`; repeat to require several." })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: "Page size (default 100)." })),
    cursor: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);
export type ListSnapshotsQuery = Static<typeof ListSnapshotsQuery>;

export const SnapshotParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256, description: "Id, name or digest." }) });

export const GetSnapshotQuery = Type.Object(
  { waitSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, description: "Hold the reply until the snapshot is no longer creating, up to this long." })) },
  { additionalProperties: false },
);

export const DeleteSnapshotQuery = Type.Object(
  { force: Type.Optional(Type.Boolean({ description: "Delete even with children or while creating." })) },
  { additionalProperties: false },
);

export const GcReport = Type.Object({
  removedImages: Type.Array(Type.Object({ id: Type.String(), snapshotId: Type.Optional(Type.String()), sizeBytes: Type.Integer() })),
  removedBlobs: Type.Array(Type.Object({ digest: Type.String(), sizeBytes: Type.Integer() })),
  removedTempFiles: Type.Integer(),
  freedBytes: Type.Integer(),
});
export type GcReport = Static<typeof GcReport>;

export const VerifyPart = Type.Object({
  part: Type.Union([Type.Literal("manifest"), Type.Literal("image"), Type.Literal("layer"), Type.Literal("blob"), Type.Literal("archive")]),
  ref: Type.String({ description: "What was checked: a file, an image id or a blob digest." }),
  expected: Type.String(),
  actual: Type.Optional(Type.String()),
  ok: Type.Boolean(),
  code: Type.Optional(Type.String({ description: "Why it failed, e.g. blob_corrupt." })),
  message: Type.Optional(Type.String()),
});

export const VerifyReport = Type.Object({
  snapshotId: Type.String(),
  ok: Type.Boolean(),
  parts: Type.Array(VerifyPart),
});
export type VerifyReport = Static<typeof VerifyReport>;

export const ExportQuery = Type.Object(
  {
    withParents: Type.Optional(Type.Boolean({ description: "Include the ancestors' manifests and content, ancestors first." })),
    withImage: Type.Optional(Type.Boolean({ description: "Include the base image's layers (always included in this version; see docs/archive-format.md)." })),
    compression: Type.Optional(Type.Union([Type.Literal("zstd"), Type.Literal("none")], { description: "zstd (default) or none." })),
  },
  { additionalProperties: false },
);

export const ImportResult = Type.Object({
  snapshot: Snapshot,
  imported: Type.Array(Type.String(), { description: "Ids of the snapshots added by this import." }),
  skipped: Type.Array(Type.String(), { description: "Ids already present with the same digest." }),
});
export type ImportResult = Static<typeof ImportResult>;

export const ReindexReport = Type.Object({
  snapshots: Type.Integer(),
  malformed: Type.Array(Type.Object({ id: Type.String(), reason: Type.String() })),
});
export type ReindexReport = Static<typeof ReindexReport>;

export const PushRequest = Type.Object(
  { repository: Type.Optional(Type.String({ pattern: "^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", maxLength: 200, description: "Repository under the registry's namespace (default strata-snapshots)." })) },
  { additionalProperties: false },
);

/** One line of the streaming push reply (`Accept: application/x-ndjson`). */
export const PushEvent = Type.Union([
  Type.Object({ type: Type.Literal("progress"), status: Type.String(), layer: Type.Optional(Type.String()), current: Type.Optional(Type.Number()), total: Type.Optional(Type.Number()) }),
  Type.Object({ type: Type.Literal("done"), snapshot: Snapshot }),
  Type.Object({ type: Type.Literal("error"), code: Type.String(), message: Type.String() }),
]);
export type PushEvent = Static<typeof PushEvent>;

export const ForkRequest = Type.Object(
  { count: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, description: "How many forks (default 1)." })) },
  { additionalProperties: false },
);
