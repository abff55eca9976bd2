// Container snapshot scenarios: create (request to ready) against a raw
// engine commit of the same container, for several sizes of changed files;
// restore to first exec against raw create + start + exec of the same image.
import type { Strata } from "@strata/sdk";
import { listContainersBySandbox, rawCommit, rawCreateStart, rawExec, rawRemove, rawRemoveImage } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";

const sizes = [
  { label: "1 MB", mb: 1, runs: 10 },
  { label: "100 MB", mb: 100, runs: 5 },
  { label: "1 GB", mb: 1024, runs: 3 },
];

export async function benchSnapshots(strata: Strata, image: string, only?: string[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const size of sizes) {
    if (only && !only.includes(size.label.replace(" ", ""))) continue;
    const sandbox = await strata.sandboxes.create({ image });
    // incompressible content, in 8 MB files
    const files = Math.max(1, Math.floor(size.mb / 8));
    const perFile = size.mb < 8 ? size.mb : 8;
    await sandbox.exec(["sh", "-c", `mkdir -p /data && for i in $(seq ${files}); do head -c ${perFile}m /dev/urandom > /data/f$i; done`], { timeoutMs: 600000 });
    const engineId = await listContainersBySandbox(sandbox.id);
    if (!engineId) throw new Error(`no container for sandbox ${sandbox.id}`);
    const result = await compare(
      size.runs,
      async () => {
        const snapshot = await (await sandbox.snapshot()).waitUntilReady();
        return () => snapshot.delete();
      },
      async () => {
        const id = await rawCommit(engineId);
        return () => rawRemoveImage(id);
      },
      1,
    );
    rows.push({ scenario: `snapshot create, ${size.label} changed`, ...result, ratio: result.strataMs / result.engineMs, target: 1.1, runs: size.runs });
    await sandbox.delete();
  }

  const source = await strata.sandboxes.create({ image });
  await source.exec(["sh", "-c", "head -c 10m /dev/urandom > /data.bin"]);
  const snapshot = await (await source.snapshot({ name: `bench-restore-${Date.now()}` })).waitUntilReady();
  const restore = await compare(
    15,
    async () => {
      const sandbox = await strata.sandboxes.create({ snapshotId: snapshot.id });
      if ((await sandbox.exec(["true"])).exitCode !== 0) throw new Error("exec failed");
      return () => sandbox.delete();
    },
    async () => {
      const id = await rawCreateStart(snapshot.info.imageId!);
      if ((await rawExec(id, ["true"])) !== 0) throw new Error("exec failed");
      return () => rawRemove(id);
    },
  );
  rows.push({ scenario: "restore to first exec", ...restore, ratio: restore.strataMs / restore.engineMs, target: 1.15, runs: 15 });
  await source.delete();
  await snapshot.delete({ force: true });
  return rows;
}

