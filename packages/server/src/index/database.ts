// The SQLite index under the home. For sandboxes it is the record; for
// snapshots (later) a cache of the manifests on disk.
import Database from "better-sqlite3";
import { join } from "node:path";

export type SandboxPhase = "creating" | "created";

export interface SandboxRow {
  id: string;
  name: string | null;
  containerId: string | null;
  image: string;
  imageId: string;
  snapshotId: string | null;
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
`;

function fromRaw(raw: RawSandboxRow): SandboxRow {
  return {
    id: raw.id,
    name: raw.name,
    containerId: raw.container_id,
    image: raw.image,
    imageId: raw.image_id,
    snapshotId: raw.snapshot_id,
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

  constructor(home: string) {
    this.db = new Database(join(home, "strata.db"));
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(schema);
  }

  insertSandbox(row: SandboxRow): void {
    this.db
      .prepare(
        `INSERT INTO sandboxes (id, name, container_id, image, image_id, snapshot_id, isolation, cmd, labels, resources, network, phase, created_at, expires_at)
         VALUES (@id, @name, @containerId, @image, @imageId, @snapshotId, @isolation, @cmd, @labels, @resources, @network, @phase, @createdAt, @expiresAt)`,
      )
      .run({
        ...row,
        cmd: row.cmd ? JSON.stringify(row.cmd) : null,
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

  /** By id or by name. */
  findSandbox(idOrName: string): SandboxRow | null {
    const raw = this.db.prepare(`SELECT * FROM sandboxes WHERE id = ? OR name = ? LIMIT 1`).get(idOrName, idOrName) as
      | RawSandboxRow
      | undefined;
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

  close(): void {
    this.db.close();
  }
}
