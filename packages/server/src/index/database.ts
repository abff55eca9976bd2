// The SQLite index under the home. For sandboxes it is the record; for
// snapshots (later) a cache of the manifests on disk.
import Database from "better-sqlite3";
import { join } from "node:path";
import type { Snapshot } from "@strata/contract";

export type SandboxPhase = "creating" | "created";

export interface SandboxRow {
  id: string;
  name: string | null;
  containerId: string | null;
  image: string;
  imageId: string;
  snapshotId: string | null;
  /** Digest of that snapshot, kept so lineage survives its deletion. */
  snapshotDigest: string | null;
  /** The image the lineage started from. */
  baseRef: string;
  baseDigest: string;
  directorySnapshots: { snapshotId: string; path: string }[];
  isolation: "runc" | "gvisor";
  cmd: string[] | null;
  labels: Record<string, string>;
  resources: { cpus?: number; memoryMb?: number; pids?: number };
  network: boolean;
  phase: SandboxPhase;
  createdAt: string;
  expiresAt: string | null;
}

interface RawSandboxRow {
  id: string;
  name: string | null;
  container_id: string | null;
  image: string;
  image_id: string;
  snapshot_id: string | null;
  snapshot_digest: string | null;
  base_ref: string;
  base_digest: string;
  directory_snapshots: string;
  isolation: "runc" | "gvisor";
  cmd: string | null;
  labels: string;
  resources: string;
  network: number;
  phase: SandboxPhase;
  created_at: string;
  expires_at: string | null;
}

const schema = `
CREATE TABLE IF NOT EXISTS sandboxes (
  id TEXT PRIMARY KEY,
  name TEXT UNIQUE,
  container_id TEXT,
  image TEXT NOT NULL,
  image_id TEXT NOT NULL,
  snapshot_id TEXT,
  snapshot_digest TEXT,
  base_ref TEXT NOT NULL,
  base_digest TEXT NOT NULL,
  directory_snapshots TEXT NOT NULL,
  isolation TEXT NOT NULL,
  cmd TEXT,
  labels TEXT NOT NULL,
  resources TEXT NOT NULL,
  network INTEGER NOT NULL,
  phase TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT
);
CREATE INDEX IF NOT EXISTS sandboxes_expiry ON sandboxes (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS snapshots (
  id TEXT PRIMARY KEY,
  name TEXT UNIQUE,
  digest TEXT,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  sandbox_id TEXT NOT NULL,
  parent_id TEXT,
  labels TEXT NOT NULL,
  created_at TEXT NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_digest ON snapshots (digest);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots (parent_id);
CREATE INDEX IF NOT EXISTS snapshots_order ON snapshots (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  status INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_at);
`;

export interface SnapshotFilter {
  kind?: string;
  status?: string;
  sandboxId?: string;
  labels?: [string, string][];
  limit: number;
  /** Exclusive start: the (createdAt, id) of the last item of the previous page. */
  after?: { createdAt: string; id: string };
}

export interface StoredReply {
  fingerprint: string;
  status: number;
  body: string;
}

function fromRaw(raw: RawSandboxRow): SandboxRow {
  return {
    id: raw.id,
    name: raw.name,
    containerId: raw.container_id,
    image: raw.image,
    imageId: raw.image_id,
    snapshotId: raw.snapshot_id,
    snapshotDigest: raw.snapshot_digest,
    baseRef: raw.base_ref,
    baseDigest: raw.base_digest,
    directorySnapshots: JSON.parse(raw.directory_snapshots) as SandboxRow["directorySnapshots"],
    isolation: raw.isolation,
    cmd: raw.cmd ? (JSON.parse(raw.cmd) as string[]) : null,
    labels: JSON.parse(raw.labels) as Record<string, string>,
    resources: JSON.parse(raw.resources) as SandboxRow["resources"],
    network: raw.network === 1,
    phase: raw.phase,
    createdAt: raw.created_at,
    expiresAt: raw.expires_at,
  };
}

/** The index of one server, in `<home>/strata.db`. */
export class Index {
  private readonly db: Database.Database;
  /** True when this index was just created: records may exist only in the artifacts. */
  readonly fresh: boolean;

  constructor(home: string) {
    this.db = new Database(join(home, "strata.db"));
    this.fresh = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sandboxes'`).get() === undefined;
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(schema);
  }

  insertSandbox(row: SandboxRow): void {
    this.db
      .prepare(
        `INSERT INTO sandboxes (id, name, container_id, image, image_id, snapshot_id, snapshot_digest, base_ref, base_digest, directory_snapshots, isolation, cmd, labels, resources, network, phase, created_at, expires_at)
         VALUES (@id, @name, @containerId, @image, @imageId, @snapshotId, @snapshotDigest, @baseRef, @baseDigest, @directorySnapshots, @isolation, @cmd, @labels, @resources, @network, @phase, @createdAt, @expiresAt)`,
      )
      .run({
        ...row,
        cmd: row.cmd ? JSON.stringify(row.cmd) : null,
        directorySnapshots: JSON.stringify(row.directorySnapshots ?? []),
        labels: JSON.stringify(row.labels),
        resources: JSON.stringify(row.resources),
        network: row.network ? 1 : 0,
      });
  }

  markSandboxCreated(id: string, containerId: string): void {
    this.db.prepare(`UPDATE sandboxes SET container_id = ?, phase = 'created' WHERE id = ?`).run(containerId, id);
  }

  setSandboxContainer(id: string, containerId: string): void {
    this.db.prepare(`UPDATE sandboxes SET container_id = ? WHERE id = ?`).run(containerId, id);
  }

  deleteSandbox(id: string): void {
    this.db.prepare(`DELETE FROM sandboxes WHERE id = ?`).run(id);
  }

  /** By id, else by name: an id always means its own sandbox, whatever names exist. */
  findSandbox(idOrName: string): SandboxRow | null {
    const raw = (this.db.prepare(`SELECT * FROM sandboxes WHERE id = ?`).get(idOrName) ??
      this.db.prepare(`SELECT * FROM sandboxes WHERE name = ?`).get(idOrName)) as RawSandboxRow | undefined;
    return raw ? fromRaw(raw) : null;
  }

  sandboxNameTaken(name: string): boolean {
    return this.db.prepare(`SELECT 1 FROM sandboxes WHERE name = ?`).get(name) !== undefined;
  }

  listSandboxes(): SandboxRow[] {
    return (this.db.prepare(`SELECT * FROM sandboxes ORDER BY created_at DESC, id`).all() as RawSandboxRow[]).map(fromRaw);
  }

  expiredSandboxes(now: string): SandboxRow[] {
    return (
      this.db.prepare(`SELECT * FROM sandboxes WHERE expires_at IS NOT NULL AND expires_at <= ?`).all(now) as RawSandboxRow[]
    ).map(fromRaw);
  }

  /** Inserts a new snapshot; a name in use fails with SQLITE_CONSTRAINT_UNIQUE. */
  insertSnapshot(record: Snapshot): void {
    this.db
      .prepare(
        `INSERT INTO snapshots (id, name, digest, kind, status, sandbox_id, parent_id, labels, created_at, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        record.id, record.name ?? null, record.digest ?? null, record.kind, record.status, record.sandboxId,
        record.parent ?? null, JSON.stringify(record.labels), record.createdAt, JSON.stringify(record),
      );
  }

  /** Inserts or replaces the cached copy of a snapshot record. */
  putSnapshot(record: Snapshot): void {
    this.db
      .prepare(
        `INSERT OR REPLACE INTO snapshots (id, name, digest, kind, status, sandbox_id, parent_id, labels, created_at, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        record.id, record.name ?? null, record.digest ?? null, record.kind, record.status, record.sandboxId,
        record.parent ?? null, JSON.stringify(record.labels), record.createdAt, JSON.stringify(record),
      );
  }

  deleteSnapshot(id: string): void {
    this.db.prepare(`DELETE FROM snapshots WHERE id = ?`).run(id);
  }

  /**
   * By id, else by digest, else by name: an id always means its own snapshot
   * and a name never shadows an id or a digest.
   */
  findSnapshot(ref: string): Snapshot | null {
    const row = (this.db.prepare(`SELECT record FROM snapshots WHERE id = ?`).get(ref) ??
      this.db.prepare(`SELECT record FROM snapshots WHERE digest = ? ORDER BY created_at DESC LIMIT 1`).get(ref) ??
      this.db.prepare(`SELECT record FROM snapshots WHERE name = ?`).get(ref)) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as Snapshot) : null;
  }

  /** A ready snapshot pushed to, or pulled from, this registry reference. */
  findSnapshotByImageUri(imageUri: string): Snapshot | null {
    const row = this.db
      .prepare(
        `SELECT record FROM snapshots WHERE status = 'ready'
         AND (json_extract(record, '$.imageUri') = ? OR json_extract(record, '$.origin.imageUri') = ?) LIMIT 1`,
      )
      .get(imageUri, imageUri) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as Snapshot) : null;
  }

  snapshotNameOwner(name: string): string | null {
    const row = this.db.prepare(`SELECT id FROM snapshots WHERE name = ?`).get(name) as { id: string } | undefined;
    return row?.id ?? null;
  }

  /** Snapshots whose content is this blob. */
  snapshotsUsingBlob(digest: string): string[] {
    return (
      this.db.prepare(`SELECT id FROM snapshots WHERE json_extract(record, '$.contentDigest') = ?`).all(digest) as { id: string }[]
    ).map((r) => r.id);
  }

  /** Every blob digest a snapshot record refers to. */
  referencedBlobs(): Set<string> {
    const rows = this.db.prepare(`SELECT json_extract(record, '$.contentDigest') AS d FROM snapshots WHERE d IS NOT NULL`).all() as { d: string }[];
    return new Set(rows.map((r) => r.d));
  }

  /** Snapshots whose content is this engine image. */
  snapshotsUsingImage(imageId: string): string[] {
    return (
      this.db.prepare(`SELECT id FROM snapshots WHERE json_extract(record, '$.imageId') = ?`).all(imageId) as { id: string }[]
    ).map((r) => r.id);
  }

  snapshotChildren(id: string): string[] {
    return (this.db.prepare(`SELECT id FROM snapshots WHERE parent_id = ?`).all(id) as { id: string }[]).map((r) => r.id);
  }

  listSnapshots(filter: SnapshotFilter): Snapshot[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.kind) (where.push("kind = ?"), args.push(filter.kind));
    if (filter.status) (where.push("status = ?"), args.push(filter.status));
    if (filter.sandboxId) (where.push("sandbox_id = ?"), args.push(filter.sandboxId));
    for (const [key, value] of filter.labels ?? []) {
      where.push("EXISTS (SELECT 1 FROM json_each(snapshots.labels) WHERE json_each.key = ? AND json_each.value = ?)");
      args.push(key, value);
    }
    if (filter.after) {
      where.push("(created_at < ? OR (created_at = ? AND id < ?))");
      args.push(filter.after.createdAt, filter.after.createdAt, filter.after.id);
    }
    const sql = `SELECT record FROM snapshots ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY created_at DESC, id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, filter.limit) as { record: string }[]).map((row) => JSON.parse(row.record) as Snapshot);
  }

  allSnapshotIds(): string[] {
    return (this.db.prepare(`SELECT id FROM snapshots`).all() as { id: string }[]).map((row) => row.id);
  }

  /** Replaces every cached snapshot with these, in one transaction. */
  replaceSnapshots(records: Snapshot[]): void {
    this.db.transaction(() => {
      this.db.prepare(`DELETE FROM snapshots`).run();
      for (const record of records) this.putSnapshot(record);
    })();
  }

  /** The reply stored for a key, or the claim on it (status 0) while its request runs. */
  findReply(scope: string, key: string): StoredReply | null {
    const row = this.db.prepare(`SELECT fingerprint, status, body FROM idempotency WHERE scope = ? AND key = ?`).get(scope, key) as
      | StoredReply
      | undefined;
    return row ?? null;
  }

  /**
   * Claims a key for a request with this fingerprint, atomically: true when
   * this call made the claim, false when the key was already claimed or
   * answered (read it with findReply). A claim holds status 0 until storeReply.
   */
  claimReply(scope: string, key: string, fingerprint: string): boolean {
    const result = this.db
      .prepare(`INSERT OR IGNORE INTO idempotency (scope, key, fingerprint, status, body, created_at) VALUES (?, ?, ?, 0, '', ?)`)
      .run(scope, key, fingerprint, new Date().toISOString());
    return result.changes === 1;
  }

  /** Records the reply of a claimed key. */
  storeReply(scope: string, key: string, reply: StoredReply): void {
    this.db
      .prepare(`UPDATE idempotency SET fingerprint = ?, status = ?, body = ? WHERE scope = ? AND key = ?`)
      .run(reply.fingerprint, reply.status, reply.body, scope, key);
  }

  /** Releases a claim whose request failed, so the key can be used again. */
  releaseReply(scope: string, key: string): void {
    this.db.prepare(`DELETE FROM idempotency WHERE scope = ? AND key = ? AND status = 0`).run(scope, key);
  }

  /** Forgets idempotency keys claimed before the cutoff (ISO time); returns how many. */
  expireReplies(before: string): number {
    return this.db.prepare(`DELETE FROM idempotency WHERE created_at < ?`).run(before).changes;
  }

  /** Drops claims left by requests that never finished (a server that stopped mid-request). */
  dropUnansweredClaims(): void {
    this.db.prepare(`DELETE FROM idempotency WHERE status = 0`).run();
  }

  close(): void {
    this.db.close();
  }
}
