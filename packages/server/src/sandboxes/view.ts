// Turns an index row and the container's live state into the API's Sandbox.
import type { Sandbox, SandboxStatus } from "@strata/contract";
import type { ContainerInfo } from "../engine/engine.js";
import type { SandboxRow } from "../index/database.js";

export function statusOf(row: SandboxRow, container: ContainerInfo | null): SandboxStatus {
  if (row.phase === "creating") return "creating";
  if (!container) return "failed";
  switch (container.state) {
    case "running":
    case "restarting":
      return "running";
    case "paused":
      return "paused";
    case "dead":
      return "failed";
    default:
      return "stopped";
  }
}

export function toSandbox(row: SandboxRow, container: ContainerInfo | null): Sandbox {
  const status = statusOf(row, container);
  return {
    id: row.id,
    ...(row.name ? { name: row.name } : {}),
    status,
    image: row.image,
    imageId: row.imageId,
    ...(row.snapshotId ? { snapshotId: row.snapshotId } : {}),
    ...(row.directorySnapshots?.length ? { directorySnapshots: row.directorySnapshots } : {}),
    isolation: row.isolation,
    ...(row.cmd ? { cmd: row.cmd } : {}),
    labels: row.labels,
    resources: row.resources,
    network: row.network,
    ...(status === "stopped" && container ? { exitCode: container.exitCode } : {}),
    createdAt: row.createdAt,
    ...(row.expiresAt ? { expiresAt: row.expiresAt } : {}),
  };
}
