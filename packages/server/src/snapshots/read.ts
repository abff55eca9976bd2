// Reading snapshots: one by id, name or digest (optionally waiting while it
// is creating), or a filtered, paginated list.
import { StrataError, type ListSnapshotsQuery, type Snapshot, type SnapshotList } from "@strata/contract";
import type { Context } from "../context.js";
import { findSnapshot } from "./find.js";

export async function getSnapshot(ctx: Context, ref: string, waitSeconds = 0, signal?: AbortSignal): Promise<Snapshot> {
  let snapshot = findSnapshot(ctx, ref);
  const deadline = Date.now() + waitSeconds * 1000;
  while (snapshot.status === "creating" && Date.now() < deadline && !signal?.aborted) {
    await ctx.jobs.waitForChange(snapshot.id, deadline - Date.now(), signal);
    snapshot = findSnapshot(ctx, snapshot.id);
  }
  return snapshot;
}

function encodeCursor(snapshot: Snapshot): string {
  return Buffer.from(JSON.stringify([snapshot.createdAt, snapshot.id])).toString("base64url");
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [string, string];
    if (typeof createdAt === "string" && typeof id === "string") return { createdAt, id };
  } catch {
    // fall through
  }
  throw new StrataError("bad_request", "query/cursor is not a cursor this server gave");
}

export function listSnapshots(ctx: Context, query: ListSnapshotsQuery): SnapshotList {
  const limit = query.limit ?? 100;
  const labels = (query.label ?? []).map((pair) => {
    const at = pair.indexOf("=");
    return [pair.slice(0, at), pair.slice(at + 1)] as [string, string];
  });
  const page = ctx.index.listSnapshots({
    kind: query.kind,
    status: query.status,
    sandboxId: query.sandboxId,
    labels,
    limit: limit + 1,
    after: query.cursor ? decodeCursor(query.cursor) : undefined,
  });
  const snapshots = page.slice(0, limit);
  return { snapshots, ...(page.length > limit ? { nextCursor: encodeCursor(snapshots[snapshots.length - 1]!) } : {}) };
}
