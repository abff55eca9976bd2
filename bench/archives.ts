// Archive scenarios: export and import of a snapshot with about 1 GB of
// changes, against the engine's own save piped through zstd, and zstd -d piped
// into the engine's load.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Strata } from "@strata/sdk";
import { peakRss } from "./directories.js";
import { rawRemoveImage } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";

const socket = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");

function sh(command: string): void {
  execFileSync("sh", ["-c", command], { stdio: ["ignore", "ignore", "inherit"] });
}

/** Restarts the process's peak resident memory count, so the next peak is this work's own. */
function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

export async function benchArchives(strata: Strata, image: string, serverPid: number, runs = 3): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "strata-bench-archive-"));
  const sandbox = await strata.sandboxes.create({ image });
  await sandbox.exec(["sh", "-c", "mkdir -p /data && for i in $(seq 8); do head -c 64m /dev/urandom > /data/r$i; done && for i in $(seq 4); do seq 1 30000000 | head -c 100m > /data/t$i; done"], { timeoutMs: 900000 });
  const snapshot = await (await sandbox.snapshot({ name: `bench-archive-${Date.now()}` })).waitUntilReady();
  await sandbox.delete();
  const imageId = snapshot.info.imageId!;
  const ours = join(dir, "ours.tar.zst");
  const theirs = join(dir, "theirs.tar.zst");

  resetPeakRss(serverPid);
  const exportRun = await compare(
    runs,
    async () => {
      await snapshot.exportToFile(ours);
    },
    async () => {
      sh(`curl -sf --unix-socket ${socket} 'http://engine/images/get?names=${imageId}' | zstd -q -c > '${theirs}'`);
    },
    1,
  );
  const exportPeak = peakRss(serverPid);
  const mb = (snapshot.info.imageSizeBytes ?? 0) / 1e6;
  const result: Row[] = [{
    scenario: "export, ~1 GB image", ...exportRun, ratio: exportRun.strataMs / exportRun.engineMs, target: 1.25, runs,
    note: `${(mb / 1000).toFixed(2)} GB; throughput ratio ${(exportRun.engineMs / exportRun.strataMs).toFixed(2)} (target >= 0.8); archive ${(statSync(ours).size / 1e6).toFixed(0)} MB vs ${(statSync(theirs).size / 1e6).toFixed(0)} MB; server peak RSS ${(exportPeak / 1e6).toFixed(0)} MB`,
  }];

  // Import needs the image gone from the engine before each run.
  await snapshot.delete({ force: true });
  resetPeakRss(serverPid);
  const importRun = await compare(
    runs,
    async () => {
      const { snapshot: imported } = await strata.snapshots.importFile(ours);
      return async () => {
        await imported.delete({ force: true });
        await rawRemoveImage(imageId).catch(() => undefined);
      };
    },
    async () => {
      sh(`zstd -d -q -c '${theirs}' | curl -sf -X POST -T - -H 'Content-Type: application/x-tar' --unix-socket ${socket} 'http://engine/images/load?quiet=1'`);
      return () => rawRemoveImage(imageId);
    },
    1,
  );
  result.push({
    scenario: "import, ~1 GB image", ...importRun, ratio: importRun.strataMs / importRun.engineMs, target: 1.25, runs,
    note: `${(mb / 1000).toFixed(2)} GB; throughput ratio ${(importRun.engineMs / importRun.strataMs).toFixed(2)} (target >= 0.8); server peak RSS ${(peakRss(serverPid) / 1e6).toFixed(0)} MB`,
  });
  rmSync(dir, { recursive: true, force: true });
  return result;
}

