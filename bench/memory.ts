// Memory snapshot scenarios (gVisor): checkpoint time and restore-to-running
// time for a sandbox holding about 100 MB and 1 GB of process memory, against a
// cold start of the same image under runsc.
import type { Strata } from "@strata/sdk";
import { benchLabel, rawRemove } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";
import { execFileSync } from "node:child_process";

const socket = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");

function coldStart(image: string): string {
  const body = JSON.stringify({ Image: image, Cmd: ["sh", "-c", "exec cat"], OpenStdin: true, Labels: benchLabel, HostConfig: { Runtime: "runsc" } });
  const out = execFileSync("sh", ["-c", `curl -sf -X POST -H 'Content-Type: application/json' -d '${body}' --unix-socket ${socket} 'http://engine/containers/create'`], { encoding: "utf8" });
  const id = (JSON.parse(out) as { Id: string }).Id;
  execFileSync("sh", ["-c", `curl -sf -X POST --unix-socket ${socket} 'http://engine/containers/${id}/start'`]);
  return id;
}

export async function benchMemory(strata: Strata, image: string): Promise<Row[]> {
  const rows: Row[] = [];
  for (const size of [{ label: "100 MB", mb: 100, runs: 3 }, { label: "1 GB", mb: 1024, runs: 2 }]) {
    // awk doubles a string until it holds the bytes: they live in the process's memory.
    const hold = `awk -v n=${size.mb * 1024 * 1024} 'BEGIN { s = "x"; while (length(s) < n) s = s s; print "ready" > "/tmp/ready"; close("/tmp/ready"); while (1) system("sleep 1") }'`;
    const source = await strata.sandboxes.create({ image, isolation: "gvisor", cmd: ["sh", "-c", hold], resources: { memoryMb: size.mb * 4 + 512 } });
    for (let i = 0; i < 600; i++) {
      if ((await source.exec(["cat", "/tmp/ready"]).catch(() => ({ exitCode: 1 }))).exitCode === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    let last: { id: string } | undefined;
    const checkpoint = await compare(
      size.runs,
      async () => {
        const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady();
        last = { id: snapshot.id };
        return async () => {
          if (size.runs > 1) await snapshot.delete({ force: true });
        };
      },
      async () => {
        const id = coldStart(image);
        return () => rawRemove(id);
      },
      0,
    );
    rows.push({ scenario: `memory snapshot (checkpoint), ${size.label} held`, ...checkpoint, ratio: checkpoint.strataMs / checkpoint.engineMs, target: NaN, runs: size.runs, note: "baseline: cold start of the image under runsc; target: < 1000 ms at 100 MB" });
    const snapshot = await (await source.snapshot({ kind: "memory" })).waitUntilReady();
    const restore = await compare(
      size.runs,
      async () => {
        const sandbox = await strata.sandboxes.create({ memorySnapshotId: snapshot.id });
        if ((await sandbox.exec(["true"])).exitCode !== 0) throw new Error("exec failed");
        return () => sandbox.delete();
      },
      async () => {
        const id = coldStart(image);
        return () => rawRemove(id);
      },
      0,
    );
    rows.push({ scenario: `memory restore to running, ${size.label} held`, ...restore, ratio: restore.strataMs / restore.engineMs, target: NaN, runs: size.runs, note: "baseline: cold start under runsc; target: < 1000 ms at 100 MB" });
    await snapshot.delete({ force: true });
    void last;
    await source.delete();
  }
  return rows;
}
