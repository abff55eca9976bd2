// Registry scenarios: push and pull of a snapshot with about 100 MB of changes
// through Strata against the engine's own push and pull of the same image, each
// run against a fresh registry on loopback so no layer is already there.
import type { Strata } from "@strata/sdk";

interface TestRegistry {
  host: string;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** The tests' registry helper (a real docker-registry on loopback), loaded from the compiled tests. */
async function startRegistry(): Promise<TestRegistry> {
  const module = (await import(new URL("../../test/dist/registry.js", import.meta.url).href)) as { startRegistry(): Promise<TestRegistry> };
  return module.startRegistry();
}
import { rawRemoveImage } from "./raw-engine.js";
import { compare, type Row } from "./stats.js";
import { execFileSync } from "node:child_process";

const socket = (process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");
const engine = (method: string, path: string, header = "") =>
  execFileSync("sh", ["-c", `curl -sf -X ${method} ${header} --unix-socket ${socket} 'http://engine${path}'`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
const auth = `-H 'X-Registry-Auth: ${Buffer.from(JSON.stringify({})).toString("base64")}'`;

export async function benchRegistry(makeServer: (registry: string) => Promise<{ strata: Strata; close(): Promise<void> }>, image: string, runs = 3): Promise<Row[]> {
  const registry = await startRegistry();
  try {
    return await pushAndPull(registry, makeServer, image, runs);
  } finally {
    await registry.close();
  }
}

async function pushAndPull(
  registry: TestRegistry, makeServer: (registry: string) => Promise<{ strata: Strata; close(): Promise<void> }>, image: string, runs: number,
): Promise<Row[]> {
  const server = await makeServer(registry.host);
  try {
    return await scenarios(registry, server, image, runs);
  } finally {
    await server.close();
  }
}

async function scenarios(registry: TestRegistry, server: { strata: Strata }, image: string, runs: number): Promise<Row[]> {
  const source = await server.strata.sandboxes.create({ image });
  await source.exec(["sh", "-c", "mkdir -p /data && for i in $(seq 10); do head -c 10m /dev/urandom > /data/f$i; done"]);
  const snapshot = await (await source.snapshot()).waitUntilReady();
  await source.delete();
  const imageId = snapshot.info.imageId!;
  const pushes: string[] = [];
  const push = await compare(
    runs,
    async () => {
      await registry.reset();
      await snapshot.push();
      pushes.push(snapshot.info.imageUri!);
    },
    async () => {
      await registry.reset();
      engine("POST", `/images/${imageId}/tag?repo=${registry.host}/raw&tag=x`);
      const out = engine("POST", `/images/${registry.host}/raw/push?tag=x`, auth);
      if (out.includes('"error"')) throw new Error(out);
    },
    0,
  );
  // Pull: from a registry that holds Strata's push; the image leaves the engine before each run.
  await registry.reset();
  await snapshot.push();
  const uri = snapshot.info.imageUri!;
  await snapshot.delete({ force: true });
  await rawRemoveImage(imageId).catch(() => undefined);
  const pull = await compare(
    runs,
    async () => {
      const sandbox = await server.strata.sandboxes.create({ imageUri: uri });
      return async () => {
        await sandbox.delete();
        for (const s of (await server.strata.snapshots.list()).snapshots) if (s.info.origin) await s.delete({ force: true });
        await rawRemoveImage(imageId).catch(() => undefined);
      };
    },
    async () => {
      const [host, rest] = [uri.slice(0, uri.indexOf("/")), uri.slice(uri.indexOf("/") + 1)];
      const out = engine("POST", `/images/create?fromImage=${encodeURIComponent(`${host}/${rest}`)}`, auth);
      if (out.includes('"error"')) throw new Error(out);
      const created = JSON.parse(engine("POST", "/containers/create", `-H 'Content-Type: application/json' -d '${JSON.stringify({ Image: uri, OpenStdin: true })}'`)) as { Id: string };
      engine("POST", `/containers/${created.Id}/start`);
      return async () => {
        engine("DELETE", `/containers/${created.Id}?force=true`);
        await rawRemoveImage(imageId).catch(() => undefined);
      };
    },
    0,
  );
  return [
    { scenario: "push, ~100 MB snapshot", ...push, ratio: push.strataMs / push.engineMs, target: 1.1, runs },
    { scenario: "pull + start from imageUri, ~100 MB snapshot", ...pull, ratio: pull.strataMs / pull.engineMs, target: 1.1, runs },
  ];
}
