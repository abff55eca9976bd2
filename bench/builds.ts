// Build scenario: a build through Strata (upload, queue, log stream, snapshot
// record) against the same context sent straight to the engine's build API.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Strata } from "@strata/sdk";
import { benchLabel, rawRemoveImage } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";

const socket = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");

export async function benchBuilds(strata: Strata, image: string, runs = 5): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "strata-bench-build-"));
  writeFileSync(join(dir, "Dockerfile"), `FROM ${image}\nCOPY stamp /stamp\nRUN head -c 20m /dev/urandom > /data && echo built\nRUN for i in $(seq 200); do echo line $i; done\n`);
  const stamp = () => writeFileSync(join(dir, "stamp"), `${Date.now()}-${Math.random()}`);
  const tarball = join(dir, "..", `${dir.split("/").pop()}.tar`);
  const result = await compare(
    runs,
    async () => {
      stamp();
      const snapshot = await strata.snapshots.build({ context: dir });
      return () => snapshot.delete({ force: true });
    },
    async () => {
      stamp();
      execFileSync("tar", ["-C", dir, "-cf", tarball, "."]);
      const out = execFileSync("sh", ["-c", `curl -sf -X POST -T '${tarball}' -H 'Content-Type: application/x-tar' --unix-socket ${socket} 'http://engine/build?rm=1&forcerm=1&labels=${encodeURIComponent(JSON.stringify(benchLabel))}'`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
      const id = /"ID":"(sha256:[0-9a-f]+)"/.exec(out)?.[1];
      if (!id) throw new Error(`raw build failed: ${out.slice(-500)}`);
      return () => rawRemoveImage(id);
    },
    1,
  );
  rmSync(dir, { recursive: true, force: true });
  rmSync(tarball, { force: true });
  return [{ scenario: "build (20 MB RUN, 200 log lines)", ...result, ratio: result.strataMs / result.engineMs, target: 1.1, runs }];
}
