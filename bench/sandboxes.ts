// Sandbox scenarios: create-to-first-exec and exec round trip, through
// Strata against the same work sent straight to the Engine API.
import type { Strata } from "@strata/sdk";
import { rawCreateStart, rawExec, rawRemove } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";

export async function benchSandboxes(strata: Strata, image: string, runs: number): Promise<Row[]> {
  const rows: Row[] = [];

  const createToExec = await compare(
    runs,
    async () => {
      const sandbox = await strata.sandboxes.create({ image });
      const result = await sandbox.exec(["true"]);
      if (result.exitCode !== 0) throw new Error("exec failed");
      await sandbox.delete();
    },
    async () => {
      const id = await rawCreateStart(image);
      if ((await rawExec(id, ["true"])) !== 0) throw new Error("exec failed");
      await rawRemove(id);
    },
  );
  rows.push({ scenario: "create + start + first exec (+ remove)", ...createToExec, ratio: createToExec.strataMs / createToExec.engineMs, target: 1.15, runs });

  const sandbox = await strata.sandboxes.create({ image });
  const containerId = await rawCreateStart(image);
  const exec = await compare(
    runs * 5,
    async () => {
      if ((await sandbox.exec(["true"])).exitCode !== 0) throw new Error("exec failed");
    },
    async () => {
      if ((await rawExec(containerId, ["true"])) !== 0) throw new Error("exec failed");
    },
  );
  rows.push({ scenario: "exec round trip", ...exec, ratio: exec.strataMs / exec.engineMs, target: 1.15, runs: runs * 5 });
  await sandbox.delete();
  await rawRemove(containerId);
  return rows;
}
