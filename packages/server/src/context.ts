// What every service receives from the composition root: no globals.
import type { ServerConfig } from "./config.js";
import type { Engine } from "./engine/engine.js";
import type { Index } from "./index/database.js";
import type { BlobStore } from "./blobs/store.js";
import type { Jobs } from "./jobs.js";
import type { RegistryClient } from "./registry/client.js";
import type { SnapshotStore } from "./snapshots/store.js";
import type { StagingBudget } from "./snapshots/staging.js";

export interface Context {
  config: ServerConfig;
  engine: Engine;
  index: Index;
  /** Identifies this server's containers among others on the same engine. */
  serverId: string;
  /** Snapshot artifacts under the home: the truth the index caches. */
  snapshots: SnapshotStore;
  blobs: BlobStore;
  jobs: Jobs;
  /** Bytes imports are staging now, bounded by `config.maxStagingBytes`. */
  staging: StagingBudget;
  /** The registry snapshots are pushed to, when configured. */
  registry?: RegistryClient;
}

/** Container labels that tie a container to its server and sandbox. */
export const labelKeys = {
  server: "dev.strata.server",
  sandbox: "dev.strata.sandbox",
  /** The sandbox's record as JSON, so an index lost or rebuilt can adopt the container again. */
  record: "dev.strata.record",
  snapshot: "dev.strata.snapshot",
  /** On snapshot images: the source sandbox's isolation, network and resources as canonical JSON. */
  settings: "dev.strata.settings",
} as const;

/**
 * The engine repository holding this server's snapshot images, tagged by
 * snapshot id. One repository per server, so servers sharing an engine (or an
 * image, after an import) never untag or collect each other's images.
 */
export function snapshotRepo(ctx: Pick<Context, "serverId">): string {
  return `strata/snapshots-${ctx.serverId}`;
}
