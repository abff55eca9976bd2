// Directory snapshot scenarios: capture of about 1 GB of mixed files against
// `tar -c | zstd -1 | sha256sum` of the same directory on this host (the
// practical limit), restore against `zstd -d | tar -x`, and the server's peak
// memory while capturing 2 GB.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import tar from "tar-stream";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Strata } from "@strata/sdk";
import { listContainersBySandbox, mergedDir } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";

const fill = [
  "mkdir -p /data/large /data/text",
  "for i in $(seq 8); do head -c 64m /dev/urandom > /data/large/r$i; done",
  "for i in $(seq 4); do seq 1 30000000 | head -c 100m > /data/text/t$i; done",
].join(" && ");

/** 25,600 files of 4 KiB (100 MB) as a tar, uploaded in one request. */
async function smallFiles(): Promise<Uint8Array> {
  const pack = tar.pack();
  for (let i = 0; i < 25600; i++) pack.entry({ name: `f${i}`, mode: 0o644 }, randomBytes(4096));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function sh(command: string): string {
  return execFileSync("sh", ["-c", command], { encoding: "utf8", maxBuffer: 1024 * 1024 }).trim();
}

/**
 * Lets the disk finish what a removal of 1 GB of files left it (the root
 * filesystem here is mounted with `discard`), so each timed restore starts
 * from a quiet disk whichever side ran before it.
 */
async function settle(): Promise<void> {
  sh("sync");
  await new Promise((resolve) => setTimeout(resolve, 8000));
}

export function peakRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

export async function benchDirectories(strata: Strata, image: string, serverPid: number, runs = 3): Promise<Row[]> {
  const rows: Row[] = [];
  const sandbox = await strata.sandboxes.create({ image });
  await sandbox.exec(["sh", "-c", fill], { timeoutMs: 900000 });
  await sandbox.files.writeTar("/data/small", await smallFiles());
  const bytes = Number((await sandbox.exec(["sh", "-c", "du -sb /data | cut -f1"])).stdout.trim());
  const containerId = (await listContainersBySandbox(sandbox.id))!;
  const dir = join(await mergedDir(containerId), "data");
  const mb = bytes / 1e6;

  let last: { id: string; contentDigest: string } | undefined;
  const capture = await compare(
    runs,
    async () => {
      const snapshot = await (await sandbox.snapshotDirectory("/data")).waitUntilReady();
      last = { id: snapshot.id, contentDigest: snapshot.info.contentDigest! };
      // keep the last one for the restore scenario; deleting removes the blob so every run stores anew
      return async () => {
        if (runs > 1) await snapshot.delete();
      };
    },
    async () => {
      sh(`tar -C '${dir}' -c . | zstd -1 -q -c | sha256sum`);
    },
    1,
  );
  rows.push({
    scenario: "directory capture, ~1 GB mixed files", ...capture, ratio: capture.strataMs / capture.engineMs, target: 1.25, runs,
    note: `${(mb / 1000).toFixed(2)} GB; ${(mb / (capture.strataMs / 1000)).toFixed(0)} MB/s vs ${(mb / (capture.engineMs / 1000)).toFixed(0)} MB/s; throughput ratio ${(capture.engineMs / capture.strataMs).toFixed(2)} (target >= 0.8)`,
  });

  const snapshot = await (await sandbox.snapshotDirectory("/data", { name: `bench-dir-${Date.now()}` })).waitUntilReady();
  const blob = join(process.env.BENCH_HOME!, "blobs", "sha256", snapshot.info.contentDigest!.slice("sha256:".length));
  const restore = await compare(
    runs,
    async () => {
      const restored = await strata.sandboxes.create({ image, directorySnapshots: [{ snapshotId: snapshot.id }] });
      return async () => {
        await restored.delete();
        await settle();
      };
    },
    async () => {
      const target = mkdtempSync(join(tmpdir(), "strata-bench-untar-"));
      sh(`zstd -d -q -c '${blob}' | tar -x -C '${target}'`);
      return async () => {
        rmSync(target, { recursive: true, force: true });
        await settle();
      };
    },
    1,
  );
  rows.push({
    scenario: "directory restore, ~1 GB mixed files", ...restore, ratio: restore.strataMs / restore.engineMs, target: 1.25, runs,
    note: `${(mb / (restore.strataMs / 1000)).toFixed(0)} MB/s vs ${(mb / (restore.engineMs / 1000)).toFixed(0)} MB/s (zstd -d | tar -x on the host)`,
  });
  await snapshot.delete();
  void last;

  // 2 GB: the server's resident memory must stay bounded while it streams.
  await sandbox.exec(["sh", "-c", "for i in $(seq 16); do head -c 64m /dev/urandom > /data/large/more$i; done"], { timeoutMs: 900000 });
  const total = Number((await sandbox.exec(["sh", "-c", "du -sb /data | cut -f1"])).stdout.trim());
  const before = peakRss(serverPid);
  const started = performance.now();
  const big = await (await sandbox.snapshotDirectory("/data")).waitUntilReady();
  const elapsed = performance.now() - started;
  const peak = peakRss(serverPid);
  rows.push({
    scenario: "directory capture, ~2 GB, server memory", strataMs: elapsed, engineMs: NaN, ratio: NaN, target: NaN, runs: 1,
    note: `${(total / 1e9).toFixed(2)} GB; server peak RSS ${(peak / 1e6).toFixed(0)} MB (before ${(before / 1e6).toFixed(0)} MB; limit 300 MB)`,
  });
  await big.delete();
  await sandbox.delete();
  return rows;
}
